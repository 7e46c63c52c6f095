"""Peak resident memory of every process of the system over a run.

The stack's processes start with the run, so their own peak (VmHWM) is the run's. The broker
was running before the run began and serves other work too: its own peak covers its whole
life, so its memory is sampled through the run instead (BrokerMemory).
"""

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.cpu import BROKER, module_name

SAMPLE_EVERY_S = 1.0
BROKER_ROW = f"{BROKER} (the machine's broker, started before the run: sampled every second)"


def peak_rss_mb(pids: dict[int, str]) -> dict[str, float]:
    """Peak resident memory (VmHWM) of each process, by its module name."""
    peaks: dict[str, float] = {}
    for pid, cmdline in pids.items():
        kb = _status_kb(pid, "VmHWM")
        if kb is not None:
            name = module_name(cmdline)
            peaks[name] = max(peaks.get(name, 0.0), kb / 1024)
    return peaks


def resident_mb(pids: Iterable[int]) -> float | None:
    """Resident memory (VmRSS) of these processes together now; None when none is readable."""
    found = [kb for kb in (_status_kb(pid, "VmRSS") for pid in pids) if kb is not None]
    return sum(found) / 1024 if found else None


class BrokerMemory:
    """The broker's resident memory while sample() runs, by stage of the run (set `stage` as
    each begins): the first sample of each stage and the highest. The broker's memory rarely
    falls once it has grown (the raw queue ceiling's backlog leaves it hundreds of MB higher),
    so a stage's growth, not its peak, is what that stage's load took."""

    def __init__(self, pids: Callable[[], Iterable[int]], every_s: float = SAMPLE_EVERY_S) -> None:
        self.pids = pids
        self.every_s = every_s
        self.stage = "start"
        # stage -> (MB at its first sample, highest MB sampled in it)
        self.by_stage: dict[str, tuple[float, float]] = {}

    @property
    def peak_mb(self) -> float | None:
        return max((peak for _, peak in self.by_stage.values()), default=None)

    async def sample(self) -> None:
        """Sample until cancelled."""
        while True:
            now = resident_mb(self.pids())
            if now is not None:
                first, peak = self.by_stage.get(self.stage, (now, now))
                self.by_stage[self.stage] = (first, max(peak, now))
            await asyncio.sleep(self.every_s)

    def row(self) -> dict[str, float]:
        """The broker's row of the memory table; none when it does not run on this machine."""
        return {} if self.peak_mb is None else {BROKER_ROW: self.peak_mb}


def _status_kb(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None
