"""MetricsQueries over fakes: the report asks the store for sums and the registry for facts."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
import pytest

from sanad.devstack.mongo_server import free_port
from sanad.errors import Unavailable
from sanad.v1 import registry_pb2_grpc
from services.metrics import award
from services.metrics.directory import RegistryDirectory
from services.metrics.domain import CenterFacts, LicenceChange
from services.metrics.queries import MetricsQueries
from services.metrics.settings import MetricsSettings
from services.metrics.store import Document

WEIGHTS = award.Weights(0.35, 0.25, 0.25, 0.15)
REFS = award.References(72.0, 800.0)


class FakeStore:
    def __init__(self, rows: dict[tuple[str, str], list[Document]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, str, tuple[str, str], str | None]] = []

    async def sums_by(
        self,
        dimension: str,
        value: str,
        days: tuple[str, str],
        group_by: str | None,
        *,
        counters: Sequence[str] = (),
        histogram: bool = True,
    ) -> list[Document]:
        self.calls.append((dimension, value, days, group_by))
        return self.rows.get((value, days[0][:4]), [])


class FakeDirectory:
    def __init__(self, centers: list[CenterFacts]) -> None:
        self.list = centers

    async def centers(self, governorate_code: str) -> list[CenterFacts]:
        return self.list if governorate_code == "DA" else []


CENTRES = [
    CenterFacts("A", "أ", "A", "DA-NIZ", 3),
    CenterFacts("B", "ب", "B", "DA-BAH", 2),
    # Licensed in 2024 by the registry, no transactions: active, counted with its staff.
    CenterFacts(
        "C", "ج", "C", "DA-IZK", 4, (LicenceChange(datetime(2024, 5, 1, tzinfo=UTC), "ACTIVE"),)
    ),
]
ROWS = {
    ("DA", "2024"): [
        {"_id": "A", "completed": 100, "fees_baisa": 500},
        {"_id": "B", "completed": 50, "rejected": 50},
    ],
    ("DA", "2023"): [{"_id": "A", "completed": 120}],
}


async def test_report_groups_rollups_of_the_year_by_centre_and_compares_years() -> None:
    store = FakeStore(ROWS)
    queries = MetricsQueries(store, FakeDirectory(CENTRES), WEIGHTS, REFS)
    report = await queries.report("DA", 2024)
    assert (report.current.active_centers, report.current.omani_staff) == (3, 9)
    assert report.current.wilayats_with_centers == 3
    assert report.current.transactions_completed == 150
    assert report.previous.active_centers == 1
    assert report.completed_change_percent == pytest.approx(25.0)
    assert ("governorate_code", "DA", ("2024-01-01", "2025-01-01"), "center_id") in store.calls


async def test_leaderboard_ranks_active_centres_and_honours_the_limit() -> None:
    queries = MetricsQueries(FakeStore(ROWS), FakeDirectory(CENTRES), WEIGHTS, REFS)
    board = await queries.leaderboard("DA", 2024, limit=2)
    assert [e.center.center_id for e in board.entries] == ["A", "B"]
    assert board.entries[1].components.rejection_rate == pytest.approx(0.5)


def test_weights_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        MetricsSettings(award_weight_speed=0.9)


async def test_an_unreachable_registry_is_unavailable_not_internal() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    directory = RegistryDirectory(channel, "test", timeout_s=1.0)
    with pytest.raises(Unavailable):
        await directory.centers("DA")
    await channel.close()


class SilentRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """A registry that accepts ListCenters and never answers."""

    async def ListCenters(self, request: object, context: object) -> object:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")


async def test_a_registry_that_never_answers_is_cut_off_at_the_outbound_deadline() -> None:
    server = grpc.aio.server()
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(SilentRegistry(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    directory = RegistryDirectory(
        channel, "test", timeout_s=MetricsSettings().grpc_outbound_timeout_s / 20
    )
    try:
        with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED"):
            await asyncio.wait_for(directory.centers("DA"), timeout=30)
    finally:
        await channel.close()
        await server.stop(0)
