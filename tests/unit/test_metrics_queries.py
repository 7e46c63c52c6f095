"""MetricsQueries over fakes, and the directory of centres that follows the registry's watch."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.devstack.mongo_server import free_port
from sanad.domain.places import Place
from sanad.errors import Unavailable
from sanad.registry_past import Dated
from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.metrics.directory import WatchedDirectory
from services.metrics.settings import MetricsSettings
from tests.unit.metrics_fakes import facts, made, queries
from tests.unit.waiting import until

CENTRES = [
    facts("A", "DA-NIZ", 3),
    facts("B", "DA-BAH", 2),
    # Licensed in 2024 by the registry, no transactions: active, counted with its staff.
    facts("C", "DA-IZK", 4, (datetime(2024, 5, 1, tzinfo=UTC), "ACTIVE")),
]
DOCS = [
    made("2024-02-01", "A", "DA-NIZ", completed=100, fees_baisa=500),
    made("2024-07-01", "B", "DA-BAH", completed=50, rejected=50),
    made("2023-03-01", "A", "DA-NIZ", completed=120),
]


async def test_report_groups_rollups_of_the_year_by_centre_and_compares_years() -> None:
    q = queries(DOCS, CENTRES)
    report = await q.report("DA", 2024)
    assert (report.current.active_centers, report.current.omani_staff) == (3, 9)
    assert report.current.wilayats_with_centers == 3
    assert report.current.transactions_completed == 150
    assert report.previous.active_centers == 1
    assert report.completed_change_percent == pytest.approx(25.0)
    assert ("year_by_place", 2024, "DA", None) in q.store.calls  # type: ignore[attr-defined]


async def test_leaderboard_ranks_active_centres_and_honours_the_limit() -> None:
    board = await queries(DOCS, CENTRES).leaderboard("DA", 2024, limit=2)
    assert [e.center.center_id for e in board.entries] == ["A", "B"]
    assert board.entries[1].components.rejection_rate == pytest.approx(0.5)


async def test_a_centre_that_only_received_transactions_is_on_report_and_leaderboard() -> None:
    # D's every transaction of 2024 was rejected (or is still open): submitted, never completed.
    docs = [*DOCS, made("2024-05-05", "D", "DA-ADM", submitted=4, rejected=4)]
    q = queries(docs, [*CENTRES, facts("D", "DA-ADM", 1)])
    report = await q.report("DA", 2024)
    board = await q.leaderboard("DA", 2024, limit=0)
    assert report.current.active_centers == 4
    assert len(board.entries) == report.current.active_centers
    (d,) = [e for e in board.entries if e.center.center_id == "D"]
    assert (d.components.completed, d.components.rejected) == (0, 4)


def test_weights_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        MetricsSettings(award_weight_speed=0.9)


async def test_a_report_before_the_registry_answers_is_unavailable_not_internal() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    directory = WatchedDirectory(channel, wait_s=0.5, outage_grace_s=60)
    following = asyncio.create_task(directory.run())
    try:
        with pytest.raises(Unavailable, match="not loaded"):
            await directory.centers_ever_in("DA")
        assert not directory.ready
    finally:
        following.cancel()
        await channel.close()


def centre(
    center_id: str, governorate: str, revision: int, staff: int = 1, wilayat: str = "X"
) -> registry_pb2.Center:
    return registry_pb2.Center(
        id=center_id,
        governorate_code=governorate,
        wilayat_code=f"{governorate}-{wilayat}",
        omani_staff=staff,
        revision=revision,
        update_time=Timestamp(seconds=1_700_000_000 + revision),
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
    directory = WatchedDirectory(channel, wait_s=10, outage_grace_s=60)
    following = asyncio.create_task(directory.run())
    try:
        found = await directory.centers_ever_in("DA")
        assert [c.center_id for c in found] == ["A", "B"]
        assert found[1].omani_staff == 4
        assert found[0].licence_history[0].to_status == "ACTIVE"
        assert await directory.centers_ever_in("MU") == []
        # The registry moves A to Muscat, then changes its staff, then moves it within Muscat.
        await registry.live.put(centre("A", "MU", 3))
        await registry.live.put(centre("A", "MU", 4, staff=7))
        await registry.live.put(centre("A", "MU", 5, staff=7, wilayat="Y"))
        await until(lambda: directory.watch.revision == 5)
        # Ad Dakhiliyah's past years still need A, so it stays among those ever placed there.
        assert [c.center_id for c in await directory.centers_ever_in("DA")] == ["A", "B"]
        assert [c.center_id for c in await directory.centers_ever_in("MU")] == ["A"]
        found = await directory.centers_by_id(["A", "B", "Z"])
        assert {k: f.governorates for k, f in found.items()} == {
            "A": frozenset({"DA", "MU"}),
            "B": frozenset({"DA"}),
        }
        assert (found["A"].governorate_code, found["A"].omani_staff) == ("MU", 7)
        # Each place, since the change that put it there; a change that did not move it, none.
        at = [datetime.fromtimestamp(1_700_000_000 + r, UTC) for r in (2, 3, 5)]
        assert list(found["A"].placements) == [
            Dated(at[0], Place("DA", "DA-X")),
            Dated(at[1], Place("MU", "MU-X")),
            Dated(at[2], Place("MU", "MU-Y")),
        ]
    finally:
        following.cancel()
        await channel.close()
        await server.stop(0)
