"""The one mapping from domain errors to gRPC status codes with google.rpc details."""

import asyncio
from collections.abc import Awaitable, Sequence

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sanad import errors

_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


def code_of(error: errors.DomainError) -> grpc.StatusCode:
    """The gRPC status code of a domain error."""
    for kind, code in _CODES.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNKNOWN


# A status travels in the reply's trailing metadata (grpc-message, percent-encoded, and
# grpc-status-details-bin, base64), which a client refuses past 8 KiB by default: a refusal that
# repeated a long value the caller sent reached it as RESOURCE_EXHAUSTED, not its own code. So
# the message and each violation are cut, and the violations stop at a budget, all in UTF-8
# bytes: with both at their most, and the call's request id (128 characters at most) beside
# them, the metadata stays near 7 KiB.
MESSAGE_LIMIT_BYTES = 1000
DESCRIPTION_LIMIT_BYTES = 400
VIOLATIONS_BUDGET_BYTES = 2000


def cut(text: str, limit_bytes: int = MESSAGE_LIMIT_BYTES) -> str:
    """text, or as much of it as fits limit_bytes with how long it was."""
    encoded = text.encode()
    if len(encoded) <= limit_bytes:
        return text
    kept = encoded[: limit_bytes - 40].decode(errors="ignore")
    return f"{kept}... ({len(text)} characters)"


def _bounded(
    violations: Sequence[errors.Violation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The violations as sent: each description cut, and as many as the budget holds, then one
    that says how many more there were."""
    sent: list[error_details_pb2.BadRequest.FieldViolation] = []
    used = 0
    for index, violation in enumerate(violations):
        field = cut(violation.field, DESCRIPTION_LIMIT_BYTES)
        description = cut(violation.description, DESCRIPTION_LIMIT_BYTES)
        used += len(field.encode()) + len(description.encode())
        if used > VIOLATIONS_BUDGET_BYTES and index > 0:
            more = len(violations) - index
            sent.append(error_details_pb2.BadRequest.FieldViolation(
                field="request", description=f"and {more} more violations not shown"))  # fmt: skip
            break
        sent.append(
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        )
    return sent


def to_status(error: errors.DomainError) -> grpc.Status:
    """A rich status: code, message, and BadRequest or RetryInfo details where they apply, cut
    to fit a client's metadata limit."""
    code = code_of(error)
    message = cut(error.message, MESSAGE_LIMIT_BYTES)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if isinstance(error, errors.Invalid | errors.OutOfRange):
        bad_request = error_details_pb2.BadRequest(field_violations=_bounded(error.violations))
        status.details.add().Pack(bad_request)
    if isinstance(error, errors.RateLimited):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_after_s * 1000))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


def field_violations(rpc_error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of a BadRequest carried by a failed call, for clients."""
    status = rpc_status.from_call(rpc_error)
    found: list[tuple[str, str]] = []
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


async def send_status(context: grpc.aio.ServicerContext, abort: Awaitable[None]) -> None:
    """Send a failed call's status (abort raises AbortError once sent). When gRPC cannot send
    it, the call ended meanwhile (its deadline passed as its handler failed): the call is
    counted and logged already, and it ends as cancelled, quietly; gRPC's own error line
    with a traceback, one per such call, bypassed the log budget in outages (chaos helper)."""
    try:
        await abort
    except grpc.aio.AbortError:
        raise
    except Exception:
        if not context.done():
            raise  # not a call that ended meanwhile: what failed is worth its traceback
        raise asyncio.CancelledError from None
