"""The caller's identity exists only inside a call the authorization interceptor admitted."""

import contextvars

import pytest

from sanad.security.identity import Identity, Role, current, set_current


def test_outside_an_authorized_call_there_is_no_identity_not_an_admin() -> None:
    with pytest.raises(LookupError, match="no caller identity"):
        contextvars.Context().run(current)


def test_inside_a_call_the_identity_is_the_one_the_interceptor_set() -> None:
    centre = Identity("abraj", Role.CENTRE, center_id="C1")

    def handle() -> Identity:
        set_current(centre)
        return current()

    assert contextvars.Context().run(handle) == centre
