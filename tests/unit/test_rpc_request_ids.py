"""The x-request-id contract of every server (README: Request ids): a caller's own id of 1 to 128
characters, or a fresh one, is the call's request id; the handler's logs carry it and the
trailing metadata returns it, whether the call succeeds or fails; sanadctl prints it with a
failure."""

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from sanad import errors
from sanad.cli.__main__ import main
from sanad.telemetry.logs import REQUEST_ID_KEY, request_id_var
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from tests.unit.metrics_stub import serving, serving_on_port

FRESH = re.compile(r"[0-9a-f]{32}")


class Seeing(metrics_pb2_grpc.MetricsServiceServicer):
    """Remembers the request id each call's handler ran under."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def GetCenterStats(self, request, context):  # type: ignore[no-untyped-def]
        self.seen.append(request_id_var.get())
        if request.center_id == "missing":
            raise errors.NotFound("centre 'missing' not found")
        if request.center_id == "broken":
            raise RuntimeError("a bug")
        if request.center_id == "slow":
            await asyncio.sleep(5)
        return metrics_pb2.GetCenterStatsResponse()


@pytest.fixture
async def served() -> AsyncIterator[tuple[Seeing, metrics_pb2_grpc.MetricsServiceStub]]:
    servicer = Seeing()
    async with serving(servicer) as stub:
        yield servicer, stub


def returned(metadata: object) -> list[str]:
    return [value for key, value in metadata or () if key == REQUEST_ID_KEY]  # type: ignore[attr-defined]


async def test_a_callers_request_id_is_the_calls_and_comes_back_in_the_trailers(
    served: tuple[Seeing, metrics_pb2_grpc.MetricsServiceStub],
) -> None:
    servicer, stub = served
    call = stub.GetCenterStats(
        metrics_pb2.GetCenterStatsRequest(center_id="c"), metadata=((REQUEST_ID_KEY, "ops-7"),)
    )
    await call
    assert servicer.seen == ["ops-7"]
    assert returned(await call.trailing_metadata()) == ["ops-7"]


@pytest.mark.parametrize(
    ("center_id", "code"),
    [("missing", grpc.StatusCode.NOT_FOUND), ("broken", grpc.StatusCode.INTERNAL)],
)
async def test_a_failed_call_returns_its_request_id_too(
    served: tuple[Seeing, metrics_pb2_grpc.MetricsServiceStub],
    center_id: str,
    code: grpc.StatusCode,
) -> None:
    # Where a caller needs it most: to find the call's log line and audit event. A rich status
    # (its details in the trailers too) keeps it beside them.
    servicer, stub = served
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetCenterStats(
            metrics_pb2.GetCenterStatsRequest(center_id=center_id),
            metadata=((REQUEST_ID_KEY, "ops-8"),),
        )
    assert refused.value.code() == code
    assert returned(refused.value.trailing_metadata()) == ["ops-8"]
    assert servicer.seen == ["ops-8"]


@pytest.mark.parametrize(
    "sent",
    [(), ((REQUEST_ID_KEY, ""),), ((REQUEST_ID_KEY, "r" * 129),)],
    ids=["none", "empty", "129 characters"],
)
async def test_without_a_usable_request_id_a_call_gets_a_fresh_one(
    served: tuple[Seeing, metrics_pb2_grpc.MetricsServiceStub], sent: tuple[tuple[str, str], ...]
) -> None:
    servicer, stub = served
    calls = []
    for _ in range(2):
        call = stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"), metadata=sent)
        await call
        calls.append(returned(await call.trailing_metadata()))
    [first], [second] = calls
    assert FRESH.fullmatch(first)
    assert FRESH.fullmatch(second)
    assert first != second
    assert servicer.seen == [first, second]


async def test_a_request_id_of_128_characters_is_kept(
    served: tuple[Seeing, metrics_pb2_grpc.MetricsServiceStub],
) -> None:
    servicer, stub = served
    longest = "r" * 128
    call = stub.GetCenterStats(
        metrics_pb2.GetCenterStatsRequest(center_id="c"), metadata=((REQUEST_ID_KEY, longest),)
    )
    await call
    assert servicer.seen == [longest]
    assert returned(await call.trailing_metadata()) == [longest]


@pytest.mark.parametrize(
    ("center_id", "said"),
    [
        ("missing", r"NOT_FOUND: centre 'missing' not found \(request id (?P<id>[0-9a-f]{32})\)"),
        # The message quotes it already: once is enough.
        ("broken", r"INTERNAL: internal error; quote request id (?P<id>[0-9a-f]{32})"),
    ],
)
async def test_sanadctl_prints_the_request_id_of_a_failed_call_once(
    center_id: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    servicer = Seeing()
    async with serving_on_port(servicer) as port:
        code = await asyncio.to_thread(
            main, ["--metrics", f"127.0.0.1:{port}", "stats", center_id], {}
        )
    assert code == 1
    printed = re.fullmatch(f"error: {said}\n", capsys.readouterr().err)
    assert printed is not None
    assert servicer.seen == [printed["id"]]


async def test_sanadctl_prints_the_request_id_it_sent_with_a_call_that_ran_out_of_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No trailers come back, yet the server may have handled the call: the id finds it.
    servicer = Seeing()
    async with serving_on_port(servicer) as port:
        argv = ["--metrics", f"127.0.0.1:{port}", "--timeout", "0.5", "stats", "slow"]
        code = await asyncio.to_thread(main, argv, {})
    assert code == 1
    printed = re.fullmatch(
        r"error: DEADLINE_EXCEEDED: .+ \(request id (?P<id>[0-9a-f]{32})\)\n",
        capsys.readouterr().err,
    )
    assert printed is not None
    assert servicer.seen == [printed["id"]]
