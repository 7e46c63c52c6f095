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
    """The highest resident memory of the broker's processes seen while sample() runs."""

    def __init__(self, pids: Callable[[], Iterable[int]], every_s: float = SAMPLE_EVERY_S) -> None:
        self.pids = pids
        self.every_s = every_s
        self.peak_mb: float | None = None

    async def sample(self) -> None:
        """Sample until cancelled."""
        while True:
            now = resident_mb(self.pids())
            if now is not None:
                self.peak_mb = max(self.peak_mb or 0.0, now)
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
