"""Property test of the metrics path: a varied scenario of transactions goes through the real ingest
handler into a real MongoDB-wire server, and every statistic, report and leaderboard the real
metrics service answers equals what brute force works out from the transactions themselves."""

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from sanad import mongo
from sanad.records import Document, proto_from_document
from sanad.settings import CommonSettings
from sanad.v1 import metrics_pb2, registry_pb2
from tests.integration import metrics_brute_force as brute
from tests.integration.metrics_deliveries import deliver, migrated_documents, queue_of
from tests.integration.metrics_scenario import (
    Centre,
    Transaction,
    counted_days,
    stats,
    transactions,
)
from tests.integration.metrics_support import Apps, register, running_apps
from workers.ingest import handlers
from workers.ingest.handlers import IngestHandler
from workers.ingest.store import IngestStore
from workers.storage.submissions import SubmissionStore

pytestmark = pytest.mark.integration

# Centres: (wilayat, Omani staff, where it moved at MOVED_AT); the last is licensed but never works.
PLACES = (
    ("DA-NIZ", 2, None),
    ("DA-NIZ", 1, None),
    ("DA-BAH", 3, "DA-NIZ"),
    ("DA-IZK", 1, "MA-SEB"),
    ("MA-SEB", 2, None),
    ("MA-MCT", 5, "DA-BAH"),
)
IDLE_LICENSED = ("DA-MAN", 4, None)
TRANSACTIONS = 160


def stamp(text: str) -> Timestamp:
    found = Timestamp()
    found.FromDatetime(datetime.fromisoformat(text).replace(tzinfo=UTC))
    return found


PERIODS: tuple[tuple[str | None, str | None], ...] = (
    (None, None),
    ("2024-01-01T00:00:00", "2025-01-01T00:00:00"),
    ("2025-01-01T00:00:00", "2026-01-01T00:00:00"),
    ("2024-12-31T12:00:00", "2025-01-01T06:00:00"),
    ("2024-02-29T00:00:00", "2024-03-01T00:00:00"),
    ("2024-02-15T08:30:00", "2025-08-01T00:00:00.000001"),
    ("2025-12-31T23:59:59", None),
    (None, "2024-06-15T09:00:00"),
)


def period_request(start: str | None, end: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if start:
        fields["start_time"] = stamp(start)
    if end:
        fields["end_time"] = stamp(end)
    return fields


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


def assert_stats(answered: metrics_pb2.Stats, expected: dict[str, float], what: str) -> None:
    got = {name: getattr(answered, name) for name in expected}
    for name in ("mean_completion_seconds", "mean_rating"):
        assert got[name] == pytest.approx(expected[name]), (what, name, got, expected)
        got[name] = expected[name]
    assert got == expected, what


async def centres_of(apps: Apps) -> tuple[list[Centre], set[str]]:
    centres = []
    for index, (wilayat, staff, moved_to) in enumerate((*PLACES, IDLE_LICENSED)):
        center_id = await register(apps, wilayat, staff, f"مركز {index}")
        centres.append(Centre(center_id, wilayat.split("-")[0], wilayat, staff, moved_to))
        if moved_to:
            await apps.registry.UpdateCenter(
                registry_pb2.UpdateCenterRequest(
                    center=registry_pb2.Center(
                        id=center_id,
                        governorate_code=moved_to.split("-")[0],
                        wilayat_code=moved_to,
                    ),
                    update_mask=FieldMask(paths=["governorate_code", "wilayat_code"]),
                )
            )
            await apps.until_metrics_knows(center_id, staff, moved_to)
    idle = centres[-1].center_id
    for action in (registry_pb2.LICENCE_ACTION_APPROVE, registry_pb2.LICENCE_ACTION_ACTIVATE):
        await apps.registry.TransitionLicence(
            registry_pb2.TransitionLicenceRequest(center_id=idle, action=action, reason="ok")
        )
    return centres, {idle}


async def store_scenario(
    rng: random.Random, centres: list[Centre], monkeypatch: pytest.MonkeyPatch, url: str, db: str
) -> list[Transaction]:
    """The scenario's live transactions through two ingest handlers side by side, each
    micro-batch at its own moment; its migrated ones as the batch worker stores history items."""
    chosen = transactions(rng, centres[:-1], TRANSACTIONS)
    clients = [mongo.connect(CommonSettings(mongo_url=url, mongo_database=db), "t") for _ in "ab"]
    clock = {"now": datetime.now(UTC)}
    monkeypatch.setattr(handlers, "utcnow", lambda: clock["now"])
    try:
        workers = [IngestHandler(IngestStore(c, c[db])) for c in clients]
        await deliver(rng, workers, queue_of(rng, chosen), lambda at: clock.update(now=at))
        history = migrated_documents(chosen, datetime.now(UTC))
        batch_store = SubmissionStore(clients[0], clients[0][db])
        for start in range(0, len(history), 7):  # in chunks, and the first sent again
            await batch_store.record_submissions(history[start : start + 7])
        await batch_store.record_submissions(history[:7])
        stored = {d["_id"]: d async for d in clients[0][db]["transactions"].find()}
    finally:
        for client in clients:
            await client.close()
    assert_stored(chosen, stored)
    return chosen


def assert_stored(chosen: list[Transaction], stored: dict[str, Document]) -> None:
    """Each transaction stored once, in its last status, its clock as brute force reads it, and
    as intake shows it."""
    assert sorted(stored) == sorted(t.transaction_id for t in chosen)
    later = datetime.now(UTC)
    for tx in chosen:
        doc = stored[tx.transaction_id]
        assert doc["status"] == tx.status.value, tx
        if tx.finish_time is not None:
            assert doc["sla_elapsed_seconds"] == tx.elapsed_seconds, (tx, doc)
            shown = proto_from_document(doc, later).sla_elapsed_seconds
            assert shown == tx.elapsed_seconds, (tx, doc)


async def assert_period_stats(apps: Apps, centres: list[Centre], chosen: list[Transaction]) -> None:
    """Every centre's and wilayat's Stats over each of PERIODS."""
    for start, end in PERIODS:
        days = counted_days(moment(start), moment(end))
        for centre in centres:
            answer = await apps.metrics.GetCenterStats(
                metrics_pb2.GetCenterStatsRequest(
                    center_id=centre.center_id, **period_request(start, end)
                )
            )
            own = brute.own(centre, chosen)
            assert_stats(answer.stats, stats(own, *days), f"centre {centre} {start}..{end}")
        for wilayat in sorted({t.place[1] for t in chosen}):
            reply = await apps.metrics.GetWilayatStats(
                metrics_pb2.GetWilayatStatsRequest(
                    wilayat_code=wilayat, **period_request(start, end)
                )
            )
            made = [t for t in chosen if t.place[1] == wilayat]
            assert_stats(reply.stats, stats(made, *days), f"wilayat {wilayat} {start}..{end}")
            working = {
                t.centre.center_id
                for t in made
                if (s := stats([t], *days))["submitted"] + s["completed"]
            }
            assert reply.centers == len(working), (wilayat, start, end)


async def assert_report(
    apps: Apps,
    governorate: str,
    year: int,
    scenario: tuple[list[Centre], list[Transaction], set[str]],
) -> None:
    """The governorate's report of the year: both years' figures and the change."""
    report = await apps.metrics.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code=governorate, year=year)
    )
    for answered, asked in ((report.current, year), (report.previous, year - 1)):
        expected = brute.figures(governorate, asked, *scenario)
        assert (
            brute.Figures(
                answered.active_centers,
                answered.wilayats_with_centers,
                answered.transactions_completed,
                answered.omani_staff,
                answered.fees_baisa,
            )
            == expected
        ), (governorate, asked)
    compared = brute.compared_completions(governorate, year, scenario[1])
    assert report.previous_completed_compared == compared, (governorate, year)
    assert report.completed_change_undefined == (compared == 0)
    if compared:
        change = 100 * (report.current.transactions_completed - compared) / compared
        assert report.completed_change_percent == pytest.approx(round(change, 2))


async def assert_leaderboard(
    apps: Apps,
    governorate: str,
    year: int,
    scenario: tuple[list[Centre], list[Transaction], set[str]],
) -> None:
    """The award's ranking of the year: its centres in order, their scores and volumes."""
    board = await apps.metrics.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code=governorate, year=year)
    )
    got = [
        (e.center_id, e.score, e.components.completed, e.components.rejected) for e in board.entries
    ]
    expected = brute.leaderboard(governorate, year, *scenario)
    assert [row[0] for row in got] == [row[0] for row in expected], (governorate, year)
    for row, want in zip(got, expected, strict=True):
        assert row[1] == pytest.approx(want[1], abs=1e-3), (year, row, want)
        assert row[2:] == want[2:], (year, row, want)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_figure_metrics_gives_is_what_the_stored_transactions_add_up_to(
    seed: int, mongo_url: str, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    async with running_apps(mongo_url, database_name) as apps:
        centres, licensed = await centres_of(apps)
        chosen = await store_scenario(rng, centres, monkeypatch, mongo_url, database_name)
        await assert_period_stats(apps, centres, chosen)
        for governorate in ("DA", "MA"):
            for year in (2024, 2025, datetime.now(UTC).year):
                await assert_report(apps, governorate, year, (centres, chosen, licensed))
                await assert_leaderboard(apps, governorate, year, (centres, chosen, licensed))
