"""`python -m bench [--mode quick|full] [--out DIR]`: measure against ceilings, write results
(by default under bench/results/<mode>)."""

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench import memory, report, system
from bench.ceiling_figures import measure_ceilings
from bench.cpu import CpuMeter, broker_pids, stack_processes
from bench.flow_figures import measure_batch_and_reports, measure_end_to_end
from bench.intake_figures import measure_intake
from bench.modes import MODES, Mode
from bench.report import Figure
from sanad.devstack.launcher import LaunchedStack, children_of

RESULTS = Path("bench/results")


async def measure_system(
    mode: Mode,
    stack: LaunchedStack,
    ceilings_by_name: dict[str, float],
    meter: CpuMeter,
    broker: memory.BrokerMemory,
) -> list[Figure]:
    """Every figure of the system, in an order where each leaves the next a settled stack."""
    center, service = system.open_centre(stack)
    make = system.Submissions(center, service)
    await system.wait_until_visible(stack.target("intake"), make)
    broker.stage = "intake"
    figures = await measure_intake(mode, stack, make, ceilings_by_name, meter)
    broker.stage = "end to end"
    figures += await measure_end_to_end(mode, stack, make, ceilings_by_name, meter)
    broker.stage = "batch and reports"
    return figures + await measure_batch_and_reports(mode, stack, make, ceilings_by_name, meter)


async def run(mode_name: str, out: Path) -> int:
    mode = MODES[mode_name]
    amqp_url = os.environ.get("SANAD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    with tempfile.TemporaryDirectory(prefix="sanad-bench-") as data:
        # Plaintext, like the no-op ceiling server and the load generator: the figures compare
        # the services' own work with the ceiling's, not the cost of TLS handshakes and records.
        stack = LaunchedStack(
            Path(data), amqp_url, {"SANAD_LOG_LEVEL": "WARNING"}, secure_mode=False
        )
        broker = memory.BrokerMemory(broker_pids)
        sampling = asyncio.create_task(broker.sample())
        try:
            stack.wait_healthy()
            # Read afresh for every load: the no-op server (a child of ours) comes and goes.
            meter = CpuMeter(lambda: stack_processes(stack.child_pids() | children_of(os.getpid())))
            broker.stage = "ceilings"
            ceilings_by_name, figures = await measure_ceilings(mode, stack, meter)
            figures += await measure_system(mode, stack, ceilings_by_name, meter, broker)
            # The stack's own supervisor too (python -m sanad.devstack, as `make run` starts).
            supervisor = {stack.process.pid: "python -m sanad.devstack"}
            peaks = memory.peak_rss_mb(stack.child_pids() | supervisor) | broker.row()
        finally:
            sampling.cancel()
            stack.stop()
    markdown = report.write(figures, peaks, mode_name, out, broker_by_stage=broker.by_stage)
    print(markdown.read_text())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the results (default: bench/results/<mode>)",
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.mode, results_folder(args.mode, args.out))))


def results_folder(mode: str, out: Path | None) -> Path:
    """`out` when given, else the mode's own folder: a quick run leaves the committed full
    run's results as they are."""
    return out if out is not None else RESULTS / mode


if __name__ == "__main__":
    main()
