"""Writes the results: JSON with every figure and its ceiling, a Markdown table, a PNG chart."""

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


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


def write(figures: list[Figure], memory: dict[str, float], mode: str, out: Path) -> Path:
    """Write results.json, results.md and results.png under out; return the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    payload = {
        "mode": mode,
        "machine": info,
        "figures": [{**asdict(f), "share": f.share} for f in figures],
        "peak_rss_mb": memory,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    markdown = out / "results.md"
    markdown.write_text(_markdown(figures, memory, info, mode))
    _chart(figures, out / "results.png")
    return markdown


def _markdown(
    figures: list[Figure], memory: dict[str, float], info: dict[str, str], mode: str
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
        share = f"{f.share:.0%}" if f.share is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lines.append(
            f"| {f.name} | {f.value:,.1f} {f.unit} | {ceiling} | {share} | "
            f"{f.target or '-'} | {met} |"
        )
    lines += ["", "| process | peak RSS (MB) | target | met |", "| --- | ---: | --- | --- |"]
    for name, mb in sorted(memory.items()):
        lines.append(f"| {name} | {mb:.0f} | < 250 MB | {'yes' if mb < 250 else '**no**'} |")
    return "\n".join(lines) + "\n"


def _chart(figures: list[Figure], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - plotting is only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rated = [f for f in figures if f.ceiling]
    latency = [f for f in figures if f.unit == "ms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [f.name for f in rated]
    left.barh(names, [f.ceiling or 0 for f in rated], color="#d0d7de", label="ceiling (same run)")
    left.barh(names, [f.value for f in rated], color="#1f6feb", label="Sanad Mesh")
    left.set_xlabel("per second")
    left.set_title("Throughput against its ceiling")
    left.legend(loc="lower right")
    right.barh([f.name for f in latency], [f.value for f in latency], color="#bf8700")
    right.set_xlabel("milliseconds")
    right.set_title("Latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
