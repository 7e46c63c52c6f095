"""Bytes that are not the method's message are bad input (invariant 6): INVALID_ARGUMENT naming
the request, counted like any call, never gRPC's UNKNOWN with the parser's exception."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sanad.devstack import certs
from sanad.rpc.server import Registration, start_server
from sanad.rpc.undecodable import Undecodable, lenient
from sanad.settings import AuthMode, ServerSettings
from sanad.telemetry.metrics import GRPC_HANDLED
from sanad.v1 import intake_pb2, intake_pb2_grpc, metrics_pb2, metrics_pb2_grpc
from tests.unit.metrics_stub import serving_on_port
from tests.unit.security_echo import MemoryAudit, start_echo

# center_id (field 1, a string) holding bytes that are not UTF-8; a length past the end.
NOT_UTF8 = b"\x0a\x02\xff\xfe"
TRUNCATED = b"\x0a\x05ab"


class Stats(metrics_pb2_grpc.MetricsServiceServicer):
    async def GetCenterStats(  # type: ignore[override]
        self, request: metrics_pb2.GetCenterStatsRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.GetCenterStatsResponse:
        return metrics_pb2.GetCenterStatsResponse()


class Submissions(intake_pb2_grpc.IntakeServiceServicer):
    async def SubmitTransactions(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[intake_pb2.SubmitTransactionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[intake_pb2.SubmitTransactionsResponse]:
        async for _ in request_iterator:
            yield intake_pb2.SubmitTransactionsResponse()


def refused_field(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(found)
    return [violation.field for violation in found.field_violations]


async def read_into(answers: list[bytes], stream: AsyncIterator[bytes]) -> None:
    async for answer in stream:
        answers.append(answer)


def invalid_count(method: str) -> float:
    labels = ("unary", "sanad.v1.MetricsService", method, "INVALID_ARGUMENT")
    return GRPC_HANDLED.labels(*labels)._value.get()  # type: ignore[no-any-return]


@pytest.mark.parametrize("body", [NOT_UTF8, TRUNCATED], ids=["not utf-8", "truncated"])
async def test_a_request_that_is_not_the_methods_message_is_invalid_argument(body: bytes) -> None:
    before = invalid_count("GetCenterStats")
    async with (
        serving_on_port(Stats()) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        call = channel.unary_unary("/sanad.v1.MetricsService/GetCenterStats")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(body, timeout=5)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("undecodable request: request: ")
    assert "Traceback" not in refused.value.details()
    assert refused_field(refused.value) == ["request"]
    assert invalid_count("GetCenterStats") == before + 1


async def test_an_item_of_a_request_stream_that_is_not_a_message_ends_it_invalid_argument() -> None:
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"),
        0,
        [
            Registration(
                "sanad.v1.IntakeService",
                lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(Submissions(), s),
            )
        ],
        checks={},
    )
    good = intake_pb2.SubmitTransactionRequest(center_id="c-1").SerializeToString()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = channel.stream_stream("/sanad.v1.IntakeService/SubmitTransactions")
            answered: list[bytes] = []
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await read_into(answered, call(iter([good, TRUNCATED]), timeout=5))
    finally:
        await running.stop(0.5)

    assert len(answered) == 1  # the good item was taken before the bad one ended the stream
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused_field(refused.value) == ["request"]


CENTER_STATS = "/sanad.v1.MetricsService/GetCenterStats"
CANCEL = "/sanad.v1.IntakeService/CancelTransaction"  # state-changing: audited


async def codes_of(port: int, method: str, body: bytes, calls: int, token: str = "") -> list[str]:
    """The status names of `calls` calls of `method` with these bytes, one after another."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    found = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        for _ in range(calls):
            try:
                await channel.unary_unary(method)(body, metadata=metadata, timeout=5)
            except grpc.aio.AioRpcError as error:
                found.append(error.code().name)
            else:
                found.append("OK")
    return found


def required(pki: Path, **more: Any) -> ServerSettings:
    return ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode=AuthMode.REQUIRED,
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        **more,
    )


def token_of(pki: Path, who: str) -> str:
    return (pki / "tokens" / f"{who}.jwt").read_text().strip()


async def test_undecodable_bytes_without_credentials_are_unauthenticated_and_pay_the_rate(
    pki: Path,
) -> None:
    running = await start_echo(required(pki, rate_limit_per_s=1, rate_limit_burst=2))
    try:
        codes = await codes_of(running.port, CENTER_STATS, NOT_UTF8, calls=3)
    finally:
        await running.stop(0)

    # As well-formed bytes without credentials are answered: the burst, then the rate.
    assert codes == ["UNAUTHENTICATED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED"]


@pytest.mark.parametrize(
    ("who", "answer"),
    [("operator", "PERMISSION_DENIED"), ("centre", "INVALID_ARGUMENT")],
    ids=["a role the policy refuses", "a role the policy admits"],
)
async def test_an_undecodable_state_changing_call_is_judged_by_the_policy_then_audited(
    pki: Path, who: str, answer: str
) -> None:
    audit = MemoryAudit()
    running = await start_echo(required(pki), audit)
    try:
        codes = await codes_of(running.port, CANCEL, NOT_UTF8, 1, token_of(pki, who))
    finally:
        await running.stop(0)

    assert codes == [answer]
    caller = certs.EXAMPLES[who]
    assert [(e.rpc, e.subject, e.outcome, e.target) for e in audit.events] == [
        (CANCEL, caller.subject, answer, {})
    ]


async def test_undecodable_statistics_are_invalid_for_every_role_that_may_ask_for_any(
    pki: Path,
) -> None:
    # GetCenterStats lets a centre read its own centre only. Bytes that are no request name no
    # centre, and are refused before anything is read: a role that may call the method hears
    # its bytes were bad (invariant 6), one that may not is refused as always.
    running = await start_echo(required(pki))
    try:
        answers = {
            who: await codes_of(running.port, CENTER_STATS, NOT_UTF8, 1, token_of(pki, who))
            for who in ("centre", "admin", "batch")
        }
    finally:
        await running.stop(0)

    assert answers == {
        "centre": ["INVALID_ARGUMENT"],
        "admin": ["INVALID_ARGUMENT"],
        "batch": ["PERMISSION_DENIED"],
    }


async def test_a_centre_asking_for_another_centres_statistics_is_still_refused(
    pki: Path,
) -> None:
    running = await start_echo(required(pki))
    other = metrics_pb2.GetCenterStatsRequest(center_id="another-centre").SerializeToString()
    try:
        codes = await codes_of(running.port, CENTER_STATS, other, 1, token_of(pki, "centre"))
    finally:
        await running.stop(0)

    assert codes == ["PERMISSION_DENIED"]


async def test_an_open_method_refuses_undecodable_bytes_at_once(pki: Path) -> None:
    running = await start_echo(required(pki))
    try:
        codes = await codes_of(running.port, "/grpc.health.v1.Health/Check", NOT_UTF8, 1)
    finally:
        await running.stop(0)

    assert codes == ["INVALID_ARGUMENT"]


async def test_an_undecodable_item_ends_the_stream_and_its_event_says_so(pki: Path) -> None:
    audit = MemoryAudit()
    running = await start_server(
        required(pki),
        0,
        [
            Registration(
                "sanad.v1.IntakeService",
                lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(Submissions(), s),
            )
        ],
        checks={},
        audit_log=audit,  # type: ignore[arg-type]
    )
    good = intake_pb2.SubmitTransactionRequest(center_id="c-1").SerializeToString()
    metadata = (("authorization", f"Bearer {token_of(pki, 'centre')}"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = channel.stream_stream("/sanad.v1.IntakeService/SubmitTransactions")
            answered: list[bytes] = []
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await read_into(answered, call(iter([good, NOT_UTF8]), metadata=metadata))
    finally:
        await running.stop(0.5)

    assert (len(answered), refused.value.code()) == (1, grpc.StatusCode.INVALID_ARGUMENT)
    assert [(e.subject, e.outcome) for e in audit.events] == [
        (certs.EXAMPLES["centre"].subject, "INVALID_ARGUMENT")
    ]


def test_a_request_over_the_servers_limit_parses_to_a_marker_naming_its_size() -> None:
    parse = metrics_pb2.GetCenterStatsRequest.FromString
    limited = lenient(parse, 8)
    assert limited(b"\x0a\x06C12345") == metrics_pb2.GetCenterStatsRequest(center_id="C12345")
    over = limited(b"\x0a\x07C123456")
    assert isinstance(over, Undecodable)
    assert over.reason == "a request of 9 bytes; this service takes at most 8"
    # A parser made lenient already (by the security interceptor) takes the limit too.
    assert isinstance(lenient(lenient(parse), 8)(b"\x0a\x07C123456"), Undecodable)
    assert lenient(lenient(parse))(b"\x0a\x07C123456") == metrics_pb2.GetCenterStatsRequest(
        center_id="C123456"
    )
