"""Every counter a dashboard or alert reads with increase() or rate() exists at zero before its
first event: a child exported from its first increment is already 1 at Prometheus's first
sample of it, and increase() never sees that step (the Centres and Award panels showed 1
completion an hour for 7, and no batch items for 24)."""

from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.metrics import BATCH_ITEMS, BATCHES
from sanad.amqp.topology import Topology
from sanad.domain.clock import utcnow
from sanad.registry_snapshot import RegistrySnapshot
from sanad.telemetry.metrics import prepare_outcomes, prepare_submitted
from sanad.v1 import registry_pb2 as pb
from tests.unit.batch_handler_support import Replies, Shared, handler
from workers.storage.rollups import RollupIncrements, prepare_outcome_series


def sample(name: str, **labels: str) -> float | None:
    """The sample's value; None when the series is not exported at all."""
    return REGISTRY.get_sample_value(name, labels)


def submitted_series(governorate: str, wilayat: str, agency: str) -> set[float | None]:
    place = {"governorate": governorate, "wilayat": wilayat, "agency": agency}
    return {
        sample("sanad_transactions_submitted_total", **place),
        sample("sanad_transaction_fees_baisa_total", **place),
    }


def outcome_series(governorate: str, wilayat: str, agency: str) -> set[float | None]:
    place = {"governorate": governorate, "wilayat": wilayat, "agency": agency}
    found = {
        sample("sanad_transactions_completed_within_sla_total", **place),
        sample("sanad_transaction_completed_lag_seconds_count", agency=agency),
        sample("sanad_transaction_rating_count", governorate=governorate),
    }
    for outcome in ("completed", "rejected", "cancelled"):
        found.add(sample("sanad_transactions_finished_total", **place, outcome=outcome))
    return found


def test_a_place_and_agency_prepared_have_their_series_at_zero_and_no_others() -> None:
    assert submitted_series("Z1", "Z1-A", "ZA1") == outcome_series("Z1", "Z1-A", "ZA1") == {None}
    prepare_submitted("Z1", "Z1-A", "ZA1")
    assert submitted_series("Z1", "Z1-A", "ZA1") == {0.0}
    assert outcome_series("Z1", "Z1-A", "ZA1") == {None}  # what intake never counts
    prepare_outcomes("Z1", "Z1-A", "ZA1")
    assert outcome_series("Z1", "Z1-A", "ZA1") == {0.0}


def centre(center_id: str, governorate: str, wilayat: str, *codes: str) -> pb.Center:
    return pb.Center(
        id=center_id,
        governorate_code=governorate,
        wilayat_code=wilayat,
        offered_service_codes=list(codes),
    )


def service(code: str, agency: str) -> pb.CatalogService:
    return pb.CatalogService(code=code, agency_code=agency)


@pytest.mark.parametrize("centre_first", [True, False])
async def test_the_registry_copy_prepares_each_centres_series_for_the_agencies_it_offers(
    centre_first: bool,
) -> None:
    governorate = f"Z{2 + centre_first}"
    wilayat = f"{governorate}-A"
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never called: only applied to
    snapshot = RegistrySnapshot(channel, outage_grace_s=60)
    applied: list[Any] = [
        lambda: snapshot._apply_center(centre("C1", governorate, wilayat, "S-1", "S-2")),
        lambda: snapshot._apply_service(service("S-1", "ZA2")),
        lambda: snapshot._apply_service(service("S-3", "ZA3")),  # offered by no centre
    ]
    for apply in applied if centre_first else reversed(applied):
        apply()
    await channel.close()

    assert submitted_series(governorate, wilayat, "ZA2") == {0.0}
    assert outcome_series(governorate, wilayat, "ZA2") == {None}
    assert sample("sanad_transactions_submitted_total", governorate=governorate,
                  wilayat=wilayat, agency="ZA3") is None  # fmt: skip


def test_the_ingest_worker_prepares_a_stored_transactions_outcome_series() -> None:
    stored = {"governorate_code": "Z4", "wilayat_code": "Z4-A", "agency_code": "ZA4"}
    increments = RollupIncrements()
    increments.recorded.append({**stored, "submit_time": utcnow()})
    increments.observe()
    assert outcome_series("Z4", "Z4-A", "ZA4") == {0.0}
    assert submitted_series("Z4", "Z4-A", "ZA4") == {None}  # intake counts those


def test_the_batch_worker_prepares_no_outcome_series() -> None:
    # It counts what it stores as submitted (prepared from its registry copy), never outcomes.
    stored = {"governorate_code": "Z6", "wilayat_code": "Z6-A", "agency_code": "ZA6"}
    increments = RollupIncrements()
    increments.recorded.append({**stored, "submit_time": utcnow(), "fee_baisa": 5})
    increments.observe(accepted_here=True)
    assert outcome_series("Z6", "Z6-A", "ZA6") == {None}


def test_a_transaction_without_its_labels_prepares_nothing() -> None:
    prepare_outcome_series({"governorate_code": "Z5", "wilayat_code": "Z5-A"})
    assert outcome_series("Z5", "Z5-A", "") == {None}


def test_a_batch_workers_outcome_counters_start_at_zero() -> None:
    BATCH_ITEMS.clear()
    BATCHES.clear()
    handler(Shared(), Replies())
    assert [sample("sanad_batch_items_total", outcome=o) for o in ("accepted", "rejected")] == [
        0.0,
        0.0,
    ]
    batches = [sample("sanad_batches_total", outcome=o) for o in ("stored", "repeated", "refused")]
    assert batches == [0.0, 0.0, 0.0]


def test_a_consumers_retries_start_at_zero() -> None:
    MicroBatchConsumer(
        "amqp://unused", Topology("zero"), "zero.ingest", handler=None, options=BatchOptions()  # type: ignore[arg-type]
    )  # fmt: skip
    assert sample("sanad_worker_retries_total", queue="zero.ingest") == 0.0
