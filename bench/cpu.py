"""CPU time each process spends per item of a measured load: what bounds each figure.

Every process of the run shares the machine's cores, so a figure's rate is bounded by the
CPU all of them spend per item together. Reported per process beside the ceiling's own,
the difference shows where the gap between a figure and its ceiling goes.
"""

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOAD_GENERATOR = "load generator"
BROKER = "rabbitmq"
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Window:
    """CPU seconds each process spent during one load, and how long the load took."""

    seconds: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)

    def per_item_us(self, items: int) -> dict[str, float]:
        """Microseconds of CPU per item, by process, busiest first, with the total last."""
        if items <= 0:
            return {}
        spent = {name: s * 1e6 / items for name, s in self.cpu_s.items() if s > 0}
        ordered = dict(sorted(spent.items(), key=lambda pair: -pair[1]))
        ordered["total"] = sum(spent.values())
        return ordered

    def __add__(self, other: "Window") -> "Window":
        """Both loads' seconds and CPU, as one load (windows measured one after the other)."""
        names = self.cpu_s.keys() | other.cpu_s.keys()
        cpu_s = {name: self.cpu_s.get(name, 0.0) + other.cpu_s.get(name, 0.0) for name in names}
        return Window(self.seconds + other.seconds, cpu_s)

    @property
    def cores_busy(self) -> float:
        """CPU seconds of all processes per second of the load."""
        return sum(self.cpu_s.values()) / self.seconds if self.seconds else 0.0


class CpuMeter:
    """Reads user + system CPU of the run's processes from /proc, by process name."""

    def __init__(self, processes: Callable[[], Mapping[int, str]]) -> None:
        self.processes = processes

    @contextmanager
    def window(self) -> Iterator[Window]:
        """Fill the yielded Window with what each process spent while the block ran."""
        named = dict(self.processes())
        before = _cpu_by_name(named)
        started = time.perf_counter()
        window = Window()
        yield window
        window.seconds = time.perf_counter() - started
        after = _cpu_by_name(named)
        window.cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}


def stack_processes(child_pids: Mapping[int, str]) -> dict[int, str]:
    """The stack's processes by module name, this process as the load generator, and the
    broker when it runs on this machine (readable in /proc)."""
    named = {pid: module_name(cmdline) for pid, cmdline in child_pids.items()}
    named[os.getpid()] = LOAD_GENERATOR
    named.update(dict.fromkeys(broker_pids(), BROKER))
    return named


def module_name(cmdline: str) -> str:
    """`services.intake` of `python -m services.intake ...`; else the command's start."""
    if " -m " in cmdline:
        return cmdline.split(" -m ", 1)[1].split(maxsplit=1)[0]
    return cmdline[:40]


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM, when it runs here."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _cpu_by_name(named: Mapping[int, str]) -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, name in named.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone; what it spent is no longer readable
        # utime and stime, fields 14 and 15 of stat (11 and 12 after the command name).
        spent[name] = spent.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return spent
