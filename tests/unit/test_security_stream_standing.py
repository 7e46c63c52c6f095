"""A streaming call's credential is verified again while the call goes on, at most every
recheck_s: one that expired or whose key was retired ends the call UNAUTHENTICATED."""

from types import SimpleNamespace
from typing import Any

import pytest

from sanad.errors import Unauthenticated
from sanad.security.identity import Identity, Role
from sanad.security.interceptor import _Standing

CENTRE = Identity("front-desk", Role.CENTRE, center_id="C1")


class Expiring:
    """Identifies the call's caller until `expired`, then refuses it as PyJWT's expiry does."""

    def __init__(self) -> None:
        self.expired = False
        self.asked = 0

    def identify(self, context: Any) -> Identity:
        self.asked += 1
        if self.expired:
            raise Unauthenticated("bad bearer token: ExpiredSignatureError")
        return CENTRE


def standing(authenticator: Expiring, recheck_s: float) -> _Standing:
    owner = SimpleNamespace(
        admission=SimpleNamespace(authenticator=authenticator), recheck_s=recheck_s
    )
    return _Standing(owner, context=object(), identity=CENTRE)  # type: ignore[arg-type]


def test_an_expired_token_ends_the_call_at_the_next_answer_after_the_interval() -> None:
    tokens = Expiring()
    call = standing(tokens, recheck_s=0)
    call.check()
    tokens.expired = True
    with pytest.raises(Unauthenticated, match="no longer holds: bad bearer token: ExpiredSig"):
        call.check()


def test_within_the_interval_answers_go_out_without_verifying_again() -> None:
    tokens = Expiring()
    call = standing(tokens, recheck_s=60)
    tokens.expired = True
    for _ in range(1000):
        call.check()
    assert tokens.asked == 0


def test_another_identity_on_the_same_call_is_refused() -> None:
    tokens = Expiring()
    call = standing(tokens, recheck_s=0)
    call.identity = Identity("front-desk", Role.CENTRE, center_id="C2")
    with pytest.raises(Unauthenticated, match="changed"):
        call.check()
