"""In the dev auth mode a caller without credentials or x-sanad-identity is one caller, whatever
connection it comes on: its retry over a new connection meets its request id's first claim."""

from collections.abc import Iterator
from typing import Any

import pytest

from sanad.rpc.identity import IDENTITY_KEY, caller
from sanad.security.identity import DEV_ADMIN, set_current


@pytest.fixture(autouse=True)
def dev_admin() -> Iterator[None]:
    """A call without credentials in the dev auth mode, as the interceptor admits it."""
    token = set_current(DEV_ADMIN)
    yield
    token.var.reset(token)


class Context:
    """The part of grpc.aio.ServicerContext that caller() reads."""

    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> Any:
        return self._metadata


def test_an_anonymous_caller_is_the_same_caller_on_every_connection() -> None:
    first = caller(Context("ipv4:127.0.0.1:50112"))  # type: ignore[arg-type]
    again = caller(Context("ipv4:127.0.0.1:50934"))  # type: ignore[arg-type]
    assert first == again == "anonymous"


def test_the_identity_header_still_names_a_dev_caller() -> None:
    named = Context("ipv4:127.0.0.1:50112", ((IDENTITY_KEY, "rop-system"),))
    assert caller(named) == "rop-system"  # type: ignore[arg-type]
