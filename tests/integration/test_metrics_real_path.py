"""The metrics path end to end: transactions submitted, changed, cancelled and rated through intake,
sent again under their request ids, carried by RabbitMQ to the ingest worker process; then every
figure metrics gives for them equals what brute force works out from the stored transactions as
intake shows them."""

import asyncio
import random
from datetime import UTC, datetime

import grpc
import pytest

from sanad.domain.transactions import Status
from sanad.v1 import common_pb2, intake_pb2, metrics_pb2
from tests.integration import metrics_brute_force as brute
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request
from tests.integration.metrics_scenario import Centre, Transaction, counted_days, path_of, stats

pytestmark = pytest.mark.integration

TRANSACTIONS = 24
S = common_pb2.TransactionStatus


async def submit(stack: Stack, rng: random.Random, centre: str, service: str, n: int) -> str:
    """Submitted once, or twice under the same request id: one transaction either way."""
    request = submit_request(centre, service, f"real-{n}", fee_baisa=5000)
    first = await stack.intake.SubmitTransaction(request, timeout=10)
    if rng.random() < 0.3:
        again = await stack.intake.SubmitTransaction(request, timeout=10)
        assert again.transaction_id == first.transaction_id
    return str(first.transaction_id)


async def view(stack: Stack, tx: str) -> intake_pb2.Transaction:
    reply = await stack.intake.GetTransaction(intake_pb2.GetTransactionRequest(id=tx))
    return reply.transaction


async def live(stack: Stack, rng: random.Random, tx: str) -> datetime | None:
    """Its stored path: changes in order, some sent again under their request id, the
    cancellation through CancelTransaction; a completion rated. The rating's time, if rated."""
    await eventually(lambda: _is(stack, tx, S.TRANSACTION_STATUS_RECORDED), within_s=20)
    last = Status.RECORDED
    for step, status in enumerate(path_of(rng)):
        await asyncio.sleep(rng.uniform(0, 0.05))
        times = 2 if rng.random() < 0.2 else 1
        for _ in range(times):
            if status is Status.CANCELLED:
                await stack.intake.CancelTransaction(
                    intake_pb2.CancelTransactionRequest(
                        id=tx, reason="x", request_id=f"{tx}-{step}"
                    )
                )
            else:
                await stack.intake.UpdateTransactionStatus(
                    intake_pb2.UpdateTransactionStatusRequest(
                        id=tx,
                        status=S.Value(f"TRANSACTION_STATUS_{status.value}"),
                        request_id=f"{tx}-{step}",
                    )
                )
        last = status
    if last is Status.COMPLETED and rng.random() < 0.7:
        rating = rng.randint(1, 5)
        rated_at = datetime.now(UTC)
        await eventually(lambda: _is(stack, tx, S.TRANSACTION_STATUS_COMPLETED), within_s=20)
        for _ in range(rng.choice((1, 2))):
            await stack.intake.RateTransaction(
                intake_pb2.RateTransactionRequest(id=tx, rating=rating)
            )
        await eventually(lambda: _rated(stack, tx), within_s=20)
        return rated_at
    await eventually(
        lambda: _is(stack, tx, S.Value(f"TRANSACTION_STATUS_{last.value}")), within_s=20
    )
    return None


async def _is(stack: Stack, tx: str, status: int) -> bool:
    try:
        return (await view(stack, tx)).status == status
    except grpc.aio.AioRpcError:  # not stored yet
        return False


async def _rated(stack: Stack, tx: str) -> bool:
    return bool((await view(stack, tx)).rating)


def as_scenario(
    shown: intake_pb2.Transaction, centre: Centre, rated_at: datetime | None
) -> Transaction:
    """A stored transaction as intake shows it, in the brute force's terms."""
    steps = [
        (
            Status(S.Name(step.status).removeprefix("TRANSACTION_STATUS_")),
            step.time.ToDatetime(tzinfo=UTC),
        )
        for step in shown.history[2:]
    ]
    return Transaction(
        transaction_id=shown.id,
        centre=centre,
        sla_hours=48,
        fee_baisa=shown.fee_baisa,
        submit_time=shown.submit_time.ToDatetime(tzinfo=UTC),
        steps=steps,
        rating=shown.rating,
        rating_time=rated_at,
    )


@pytest.mark.parametrize("seed", [7, 8])
async def test_metrics_add_up_what_intake_stored_through_the_broker(
    stack: Stack, seed: int
) -> None:
    rng = random.Random(seed)
    opened = [await open_centre_with_service(stack) for _ in range(2)]
    centres = [Centre(center_id, "DA", "DA-NIZ", 3) for center_id, _ in opened]
    worker = stack.start_worker()
    try:
        ids = [await submit(stack, rng, *rng.choice(opened), n) for n in range(TRANSACTIONS)]
        rated = await asyncio.gather(
            *(live(stack, random.Random(f"{seed}-{n}"), tx) for n, tx in enumerate(ids))
        )
        shown = [await view(stack, tx) for tx in ids]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    by_id = {c.center_id: c for c in centres}
    chosen = [as_scenario(s, by_id[s.center_id], at) for s, at in zip(shown, rated, strict=True)]
    assert {t.status for t in chosen} >= {Status.COMPLETED, Status.CANCELLED}
    for t in chosen:
        if t.finish_time is not None:
            assert (
                next(s for s in shown if s.id == t.transaction_id).sla_elapsed_seconds
                == t.elapsed_seconds
            )

    for centre in centres:
        answer = await stack.metrics.GetCenterStats(
            metrics_pb2.GetCenterStatsRequest(center_id=centre.center_id)
        )
        expected = stats(brute.own(centre, chosen), *counted_days(None, None))
        got = {name: getattr(answer.stats, name) for name in expected}
        assert got == pytest.approx(expected), centre
    year = datetime.now(UTC).year
    scenario = (centres, chosen, {c.center_id for c in centres})
    report = await stack.metrics.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=year)
    )
    assert (
        report.current.transactions_completed
        == brute.figures("DA", year, *scenario).transactions_completed
    )
    assert report.current.fees_baisa == brute.figures("DA", year, *scenario).fees_baisa
    board = await stack.metrics.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=year)
    )
    expected_board = brute.leaderboard("DA", year, *scenario)
    assert [
        (e.center_id, e.components.completed, e.components.rejected) for e in board.entries
    ] == [(row[0], row[2], row[3]) for row in expected_board]
    for entry, row in zip(board.entries, expected_board, strict=True):
        assert entry.score == pytest.approx(row[1], abs=1e-3)
