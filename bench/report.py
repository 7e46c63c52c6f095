"""Writes the results: JSON with every figure and its ceiling, a Markdown table, a PNG chart."""

import json
import os
import platform
import re
import textwrap
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.cpu import Window

Condition = int | float | bool | list[float]

# Columns of the CPU table, in this order; processes not named here follow.
CPU_COLUMNS = (
    "load generator",
    "bench.noop",
    "services.intake",
    "workers.ingest",
    "workers.batch",
    "secantus",
    "rabbitmq",
    "services.registry",
    "services.metrics",
)


@dataclass
class Figure:
    """One measured figure beside the ceiling it is judged against."""

    name: str
    value: float
    unit: str
    ceiling: float | None = None
    ceiling_name: str = ""
    target: str = ""
    met: bool | None = None
    # CPU microseconds per item by process during the load, and the cores it kept busy.
    cpu_us: dict[str, float] = field(default_factory=dict)
    cores_busy: float | None = None
    # What the figure was measured under, as numbers: callers, the offered rate, the
    # transactions stored, each window's p99, whether the backlog stayed flat.
    conditions: Mapping[str, Condition] = field(default_factory=dict)

    def spent(self, window: Window, items: int) -> "Figure":
        """This figure with the CPU its load spent, per item of `items`."""
        self.cpu_us = window.per_item_us(items)
        self.cores_busy = window.cores_busy
        return self

    @property
    def share(self) -> float | None:
        """value / ceiling, where a ceiling applies."""
        return self.value / self.ceiling if self.ceiling else None


def machine() -> dict[str, str]:
    """What the figures ran on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write(
    figures: list[Figure],
    memory: dict[str, float],
    mode: str,
    out: Path,
    broker_by_stage: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Write results.json, results.md and results.png under out; return the Markdown path.
    broker_by_stage: the broker's memory at the start of each stage of the run and its peak in
    it, in order."""
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    stages = broker_by_stage or {}
    payload = {
        "mode": mode,
        "machine": info,
        "figures": [{**asdict(f), "share": f.share} for f in figures],
        "peak_rss_mb": memory,
        "broker_mb_by_stage": {
            stage: {"start": first, "peak": peak} for stage, (first, peak) in stages.items()
        },
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    markdown = out / "results.md"
    markdown.write_text(_markdown(figures, memory, info, mode, stages))
    _chart(figures, out / "results.png")
    return markdown


def _markdown(
    figures: list[Figure],
    memory: dict[str, float],
    info: dict[str, str],
    mode: str,
    broker_by_stage: dict[str, tuple[float, float]],
) -> str:
    lines = [
        f"Mode `{mode}` on {info['cpu']} ({info['cores']} cores), Python {info['python']}, "
        f"{info['date']}.",
        "",
        "| figure | value | ceiling (same run) | share | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for f in figures:
        ceiling = f"{f.ceiling:,.1f} ({f.ceiling_name})" if f.ceiling else "-"
        # One decimal: 49.6% against a ">= 50%" target must not read as 50%.
        share = f"{f.share:.1%}" if f.share is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lines.append(
            f"| {f.name} | {f.value:,.1f} {f.unit} | {ceiling} | {share} | "
            f"{f.target or '-'} | {met} |"
        )
    lines += _cpu_table(figures)
    lines += ["", "| process | peak RSS (MB) | target | met |", "| --- | ---: | --- | --- |"]
    for name, mb in sorted(memory.items()):
        lines.append(f"| {name} | {mb:.0f} | < 250 MB | {'yes' if mb < 250 else '**no**'} |")
    if broker_by_stage:
        stages = ", ".join(
            f"{stage} {first:.0f} to {peak:.0f}" for stage, (first, peak) in broker_by_stage.items()
        )
        lines += [
            "",
            f"The broker's memory from the start of each stage to its peak, MB: {stages}.",
        ]
    return "\n".join(lines) + "\n"


def _cpu_table(figures: list[Figure]) -> list[str]:
    """CPU microseconds per item, by process, of every load measured: where each goes."""
    spent = [f for f in figures if f.cpu_us]
    if not spent:
        return []
    seen = {name for f in spent for name in f.cpu_us if name != "total"}
    columns = [c for c in CPU_COLUMNS if c in seen] + sorted(seen - set(CPU_COLUMNS))
    lines = [
        "",
        "CPU per item (µs) by process during each load, and the cores the load kept busy:",
        "",
        "| load | " + " | ".join(columns) + " | total | cores busy |",
        "| --- |" + " ---: |" * (len(columns) + 2),
    ]
    for f in spent:
        cells = [f"{f.cpu_us[c]:,.0f}" if c in f.cpu_us else "-" for c in columns]
        lines.append(
            f"| {f.name} | " + " | ".join(cells) + f" | {f.cpu_us['total']:,.0f} | "
            f"{f.cores_busy or 0:.2f} |"
        )
    return lines


def target_number(target: str) -> float | None:
    """The number a target names: ">= 50%, backlog flat" -> 50, "<= 25 ms" -> 25."""
    found = re.search(r"\d+(\.\d+)?", target)
    return float(found.group()) if found else None


def _chart(figures: list[Figure], path: Path) -> None:
    """Each throughput as its share of its same-run ceiling, latencies in ms, targets marked."""
    import matplotlib  # noqa: PLC0415 - plotting is only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rated = [f for f in figures if f.ceiling]
    latency = [f for f in figures if f.unit == "ms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    rows = range(len(rated))
    left.barh(rows, [100 * (f.share or 0) for f in rated], color="#1f6feb")
    for row, f in zip(rows, rated, strict=True):
        goal = target_number(f.target)
        if goal is not None:
            left.plot([goal, goal], [row - 0.4, row + 0.4], color="#cf222e", linewidth=2)
        shown = f"{f.value:,.0f} of {f.ceiling:,.0f} {f.unit}"
        end = max(100 * (f.share or 0), goal or 0)
        left.text(end + 1, row, shown, va="center", fontsize=8)
    left.set_yticks(list(rows), [textwrap.fill(f.name, 38) for f in rated], fontsize=8)
    left.set_xlim(0, max([130.0, *(100 * (f.share or 0) + 30 for f in rated)]))
    left.set_xlabel("% of the same-run ceiling (red: target)")
    left.set_title("Throughput against its ceiling")
    spots = range(len(latency))
    right.barh(spots, [f.value for f in latency], color="#bf8700")
    for spot, f in zip(spots, latency, strict=True):
        right.text(f.value, spot, f" {f.value:,.1f}", va="center", fontsize=8)
        if (goal := target_number(f.target)) is not None:
            right.plot([goal, goal], [spot - 0.4, spot + 0.4], color="#cf222e", linewidth=2)
    right.set_yticks(list(spots), [textwrap.fill(f.name, 38) for f in latency], fontsize=8)
    right.set_xlabel("milliseconds (red: target)")
    right.set_title("Latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
