"""MetricsQueries over fakes, and the directory of centres that follows the registry's watch."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad import rollups
from sanad.devstack.mongo_server import free_port
from sanad.errors import Unavailable
from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.metrics import award
from services.metrics.directory import WatchedDirectory
from services.metrics.domain import CenterFacts, LicenceChange
from services.metrics.queries import MetricsQueries
from services.metrics.settings import MetricsSettings
from services.metrics.store import Document

WEIGHTS = award.Weights(0.35, 0.25, 0.25, 0.15)
REFS = award.References(72.0, 800.0)


class FakeStore:
    """Rows by (value, first year); like MetricsStore, it sums only the counters asked for."""

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
        counters: Sequence[str] = rollups.COUNTERS,
        histogram: bool = True,
    ) -> list[Document]:
        self.calls.append((dimension, value, days, group_by))
        return [
            _asked_for(row, counters, histogram) for row in self.rows.get((value, days[0][:4]), [])
        ]


def _asked_for(row: Document, counters: Sequence[str], histogram: bool) -> Document:
    """The row as MetricsStore would return it: counters not asked for read 0."""
    kept: Document = {
        name: row.get(name, 0) if name in counters else 0 for name in rollups.COUNTERS
    }
    kept[rollups.HISTOGRAM] = row.get(rollups.HISTOGRAM, {}) if histogram else {}
    kept["_id"] = row["_id"]
    return kept


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


async def test_a_centre_that_only_received_transactions_is_on_report_and_leaderboard() -> None:
    # D's every transaction of 2024 was rejected (or is still open): submitted, never completed.
    rows = {("DA", "2024"): [*ROWS[("DA", "2024")], {"_id": "D", "submitted": 4, "rejected": 4}]}
    centres = [*CENTRES, CenterFacts("D", "د", "D", "DA-ADM", 1)]
    queries = MetricsQueries(FakeStore(rows), FakeDirectory(centres), WEIGHTS, REFS)
    report = await queries.report("DA", 2024)
    board = await queries.leaderboard("DA", 2024, limit=0)
    assert report.current.active_centers == 4
    assert len(board.entries) == report.current.active_centers
    (d,) = [e for e in board.entries if e.center.center_id == "D"]
    assert (d.components.completed, d.components.rejected) == (0, 4)


def test_weights_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        MetricsSettings(award_weight_speed=0.9)


async def test_a_report_before_the_registry_answers_is_unavailable_not_internal() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    directory = WatchedDirectory(channel, wait_s=0.5)
    following = asyncio.create_task(directory.run())
    try:
        with pytest.raises(Unavailable, match="not loaded"):
            await directory.centers("DA")
        assert not directory.ready
    finally:
        following.cancel()
        await channel.close()


def centre(center_id: str, governorate: str, revision: int, staff: int = 1) -> registry_pb2.Center:
    return registry_pb2.Center(
        id=center_id,
        governorate_code=governorate,
        wilayat_code=f"{governorate}-X",
        omani_staff=staff,
        revision=revision,
        licence=registry_pb2.Licence(
            history=[
                registry_pb2.LicenceEvent(
                    to_status=registry_pb2.LICENCE_STATUS_ACTIVE,
                    time=Timestamp(seconds=1_700_000_000),
                )
            ]
        ),
    )


class ScriptedRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """WatchCenters replays its centres, marks the replay, then sends what `live` receives."""

    def __init__(self, centers: list[registry_pb2.Center]) -> None:
        self.centers = centers
        self.live: asyncio.Queue[registry_pb2.Center] = asyncio.Queue()

    async def WatchCenters(
        self, request: registry_pb2.WatchCentersRequest, context: object
    ) -> AsyncIterator[registry_pb2.WatchCentersResponse]:
        for center in self.centers:
            yield registry_pb2.WatchCentersResponse(center=center)
        yield registry_pb2.WatchCentersResponse(synced=registry_pb2.WatchSynced(revision=2))
        while True:
            yield registry_pb2.WatchCentersResponse(center=await self.live.get())


async def test_the_directory_serves_each_governorate_from_the_watch_and_follows_moves() -> None:
    registry = ScriptedRegistry([centre("B", "DA", 1, staff=4), centre("A", "DA", 2)])
    server = grpc.aio.server()
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    directory = WatchedDirectory(channel, wait_s=10)
    following = asyncio.create_task(directory.run())
    try:
        found = await directory.centers("DA")
        assert [c.center_id for c in found] == ["A", "B"]
        assert found[1].omani_staff == 4
        assert found[0].licence_history[0].to_status == "ACTIVE"
        assert await directory.centers("MU") == []
        # The registry moves A to Muscat: it leaves Ad Dakhiliyah's list.
        await registry.live.put(centre("A", "MU", 3))
        await eventually(lambda: directory.watch.revision == 3)
        assert [c.center_id for c in await directory.centers("DA")] == ["B"]
        assert [c.center_id for c in await directory.centers("MU")] == ["A"]
    finally:
        following.cancel()
        await channel.close()
        await server.stop(0)


async def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)
