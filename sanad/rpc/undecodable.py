"""Requests whose bytes are not the method's message, or more bytes than the server takes
(ServerInterceptor's max_request_bytes): parsed to a marker, refused as Invalid.

gRPC itself would answer UNKNOWN with the parser's exception; bad input is INVALID_ARGUMENT
(DESIGN §5, invariant 6). So every method's parser is made lenient: bad bytes parse to an
Undecodable marker, and the one layer that made the parser lenient turns the marker into the
refusal when it hands the request on (`handed_on`):
- the security interceptor, for the methods it guards, once it has authenticated, charged and
  authorized the caller: bad bytes need credentials, cost a token and are audited like any
  call (sanad.security.interceptor);
- the bookkeeping interceptor, at once, for the methods nothing guards (health, reflection:
  sanad.rpc.interceptors), and for any handler whose parser is not lenient yet.
A request stream's item is refused when its handler reads it: the call was admitted at its start.
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import DecodeError

from sanad import errors

Parse = Callable[[bytes], Any]


class Undecodable:
    """What a request's bytes parse to when they are not the method's message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Lenient:
    """A method's parser that answers Undecodable instead of raising on bad bytes, or on more
    than max_bytes of them (None: any size); whoever wraps a parser in it refuses what it
    answers."""

    __slots__ = ("max_bytes", "parse")

    def __init__(self, parse: Parse, max_bytes: int | None = None) -> None:
        self.parse = parse
        self.max_bytes = max_bytes

    def __call__(self, data: bytes) -> Any:
        if self.max_bytes is not None and len(data) > self.max_bytes:
            return Undecodable(
                f"a request of {len(data):,} bytes; this service takes at most {self.max_bytes:,}"
            )
        try:
            return self.parse(data)
        except DecodeError as error:
            return Undecodable(str(error) or "not a valid message")


def lenient(parse: Parse | None, max_bytes: int | None = None) -> Parse | None:
    """The method's parser made lenient, refusing more than max_bytes when given (once: a
    lenient one as it is, but for a limit given now)."""
    if parse is None:
        return parse
    if isinstance(parse, Lenient):
        return parse if max_bytes is None else Lenient(parse.parse, max_bytes)
    return Lenient(parse, max_bytes)


def is_lenient(parse: Parse | None) -> bool:
    """Whether a handler's parser is lenient already: its layer refuses the marker itself."""
    return isinstance(parse, Lenient)


def decoded(request: Any) -> Any:
    """The request as it came; Invalid when its bytes were not the method's message."""
    if isinstance(request, Undecodable):
        # The parser's message names the message type and the fault; never the bytes.
        raise errors.Invalid([errors.Violation("request", request.reason)], "undecodable request")
    return request


def handed_on(request: Any, streamed: bool) -> Any:
    """A unary request as it came, Invalid now when undecodable; a request stream's items, each
    refused as it is read."""
    return decoded_items(request) if streamed else decoded(request)


async def decoded_items(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream's items; Invalid at the first one whose bytes were not a message."""
    async for item in items:
        yield decoded(item)
