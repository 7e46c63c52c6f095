"""A governorate or wilayat the registry does not list is INVALID_ARGUMENT, not a report of
zeros; a registry that cannot be asked is UNAVAILABLE, not a wrong answer."""

from collections.abc import AsyncIterator

import grpc
import pytest

from sanad.devstack.mongo_server import free_port
from sanad.errors import Invalid, Unavailable
from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2, metrics_pb2_grpc, registry_pb2, registry_pb2_grpc
from services.metrics.places import RegistryPlaces
from services.metrics.servicer import MetricsServicer
from tests.unit.metrics_fakes import facts, made, queries
from tests.unit.metrics_stub import serving


class ReferenceRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """Serves two governorates; counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.governorates = [
            registry_pb2.Governorate(
                code="DA", wilayats=[registry_pb2.Wilayat(code="DA-NIZ", governorate_code="DA")]
            ),
            registry_pb2.Governorate(code="MU"),
        ]

    async def ListGovernorates(
        self, request: registry_pb2.ListGovernoratesRequest, context: object
    ) -> registry_pb2.ListGovernoratesResponse:
        self.asked += 1
        return registry_pb2.ListGovernoratesResponse(governorates=self.governorates)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def registry() -> AsyncIterator[tuple[ReferenceRegistry, grpc.aio.Channel, grpc.aio.Server]]:
    servicer = ReferenceRegistry()
    server = grpc.aio.server()
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield servicer, channel, server
    await channel.close()
    await server.stop(0)


async def test_the_registry_list_decides_which_codes_exist(
    registry: tuple[ReferenceRegistry, grpc.aio.Channel, grpc.aio.Server],
) -> None:
    servicer, channel, _ = registry
    places = RegistryPlaces(channel, timeout_s=5)
    await places.check_governorate("DA")
    await places.check_governorate("MU")  # no wilayats listed: still a governorate
    await places.check_wilayat("DA-NIZ")
    for bad in ("XX", "da", "DA-NIZ"):
        with pytest.raises(Invalid) as caught:
            await places.check_governorate(bad)
        assert caught.value.violations[0].field == "governorate_code"
    with pytest.raises(Invalid) as wilayat:
        await places.check_wilayat("DA-XXX")
    assert wilayat.value.violations[0].field == "wilayat_code"
    assert servicer.asked == 1  # fetched once, then held


async def test_an_unknown_code_asks_the_registry_again_at_most_once_a_refresh(
    registry: tuple[ReferenceRegistry, grpc.aio.Channel, grpc.aio.Server],
) -> None:
    servicer, channel, _ = registry
    clock = Clock()
    places = RegistryPlaces(channel, timeout_s=5, refresh_s=60, clock=clock)
    await places.check_governorate("DA")
    for _ in range(5):
        with pytest.raises(Invalid):
            await places.check_governorate("WU")
    assert servicer.asked == 1
    # A registry upgrade adds Al Wusta; a minute later a miss fetches the list again.
    servicer.governorates.append(registry_pb2.Governorate(code="WU"))
    clock.now = 61
    await places.check_governorate("WU")
    assert servicer.asked == 2


async def test_before_the_list_is_fetched_a_registry_away_is_unavailable() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Unavailable, match="governorates"):
            await RegistryPlaces(channel, timeout_s=2).check_governorate("DA")
    finally:
        await channel.close()


async def test_once_fetched_the_list_outlives_a_registry_away(
    registry: tuple[ReferenceRegistry, grpc.aio.Channel, grpc.aio.Server],
) -> None:
    _, channel, server = registry
    clock = Clock()
    places = RegistryPlaces(channel, timeout_s=2, refresh_s=60, clock=clock)
    await places.check_governorate("DA")
    await server.stop(0)
    clock.now = 61
    await places.check_governorate("DA")
    with pytest.raises(Invalid):
        await places.check_governorate("XX")


async def refused(call: object, request: object) -> list[tuple[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request)  # type: ignore[operator]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(caught.value)


@pytest.fixture
async def stub() -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    q = queries([made("2024-03-01", "A", "DA-NIZ", completed=3)], [facts("A", "DA-NIZ", 2)])
    async with serving(MetricsServicer(q)) as served:
        yield served


@pytest.mark.parametrize("code", ["XX", "da", "DA-NIZ", " DA"])
async def test_an_unknown_governorate_is_invalid_argument_naming_the_field(
    stub: metrics_pb2_grpc.MetricsServiceStub, code: str
) -> None:
    report = metrics_pb2.GetGovernorateReportRequest(governorate_code=code, year=2024)
    board = metrics_pb2.GetAwardLeaderboardRequest(governorate_code=code, year=2024)
    expected = [("governorate_code", f"unknown governorate {code!r}")]
    assert await refused(stub.GetGovernorateReport, report) == expected
    assert await refused(stub.GetAwardLeaderboard, board) == expected


async def test_an_unknown_wilayat_is_invalid_argument_naming_the_field(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    request = metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-XXX")
    assert await refused(stub.GetWilayatStats, request) == [
        ("wilayat_code", "unknown wilayat 'DA-XXX'")
    ]


async def test_a_known_governorate_without_centres_answers_zeros(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    request = metrics_pb2.GetGovernorateReportRequest(governorate_code="MU", year=2024)
    report = await stub.GetGovernorateReport(request)
    assert (report.current.active_centers, report.current.transactions_completed) == (0, 0)
    board = await stub.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="MU", year=2024)
    )
    assert list(board.entries) == []
    known = await stub.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024)
    )
    assert known.current.transactions_completed == 3
