"""Every reason a worker dead-letters with is declared, so its counter starts at zero."""

import ast
from pathlib import Path

import pytest

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.handling import HANDLER_FAILED
from sanad.amqp.topology import Topology
from sanad.telemetry.metrics import AMQP_DEAD_LETTERED
from workers.batch import refusals as batch
from workers.ingest import handlers as ingest

ROOT = Path(__file__).resolve().parents[2]


def reasons_written_in(folder: Path) -> set[str]:
    """The literal first arguments of every Dead(...) and Retry(...) in a worker's package."""
    found = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"Dead", "Retry"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


@pytest.mark.parametrize(
    ("package", "declared"),
    [("ingest", ingest.DEAD_LETTER_REASONS), ("batch", batch.DEAD_LETTER_REASONS)],
)
def test_every_reason_a_worker_writes_is_declared(package: str, declared: tuple[str, ...]) -> None:
    written = reasons_written_in(ROOT / "workers" / package)

    assert written
    assert written <= set(declared)


def test_a_consumers_counters_exist_at_zero_before_any_dead_letter() -> None:
    MicroBatchConsumer(
        "amqp://unused", Topology("z"), "z.ingest", handler=None, options=BatchOptions(),  # type: ignore[arg-type]
        reasons=("invalid",),
    )  # fmt: skip

    samples = {
        sample.labels["reason"]: sample.value
        for metric in AMQP_DEAD_LETTERED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["queue"] == "z.ingest"
    }
    assert samples == {"invalid": 0.0, HANDLER_FAILED: 0.0}
