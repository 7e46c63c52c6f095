"""The benchmark's CPU accounting (what each process spent per item) and the results it writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import results_folder
from bench.cpu import LOAD_GENERATOR, CpuMeter, Window, module_name, stack_processes
from bench.report import Figure


def test_a_busy_process_is_charged_what_it_spent_during_the_window() -> None:
    # Spins for 0.4 s of CPU, says so, then idles (a reaped process's CPU is no longer readable).
    spin = (
        "import time\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\nprint(flush=True)\ntime.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE)
    try:
        meter = CpuMeter(lambda: {child.pid: "spinner"})
        with meter.window() as window:
            assert child.stdout is not None
            child.stdout.readline()
    finally:
        child.kill()
        child.wait()
    assert 0.35 <= window.cpu_s["spinner"] <= 1.0
    assert window.cores_busy > 0


def test_per_item_microseconds_come_busiest_first_with_their_total_last() -> None:
    window = Window(seconds=2.0, cpu_s={"a": 0.1, "b": 0.3, "idle": 0.0})
    assert window.per_item_us(1000) == {"b": 300.0, "a": 100.0, "total": 400.0}
    assert window.per_item_us(0) == {}
    assert window.cores_busy == 0.2


def test_windows_measured_one_after_another_add_up_to_one_load() -> None:
    first = Window(seconds=2.0, cpu_s={"a": 0.1, "b": 0.3})
    second = Window(seconds=1.0, cpu_s={"b": 0.2, "c": 0.6})
    both = Window() + first + second
    assert both.seconds == 3.0
    assert both.cpu_s == {"a": 0.1, "b": 0.5, "c": 0.6}
    assert both.cores_busy == pytest.approx(0.4)


def test_processes_are_named_by_module_with_this_one_as_the_load_generator() -> None:
    named = stack_processes({123: "/venv/bin/python -m services.intake --flag"})
    assert named[123] == "services.intake"
    assert LOAD_GENERATOR in named.values()
    assert module_name("/usr/bin/something else") == "/usr/bin/something else"


def test_the_markdown_shows_each_loads_cpu_per_process_and_its_total(tmp_path: Path) -> None:
    window = Window(seconds=1.0, cpu_s={"services.intake": 0.5, "secantus": 0.25})
    figures = [
        Figure("intake unary", 500.0, "/s", 1000.0, "no-op", ">= 50%", True).spent(window, 500),
        Figure("p99", 12.0, "ms"),
    ]
    text = report.write(figures, {"services.intake": 90.0}, "quick", tmp_path).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| intake unary |")]
    # The figure's own row, then its CPU row: intake's and the database's µs per call,
    # their total and the cores busy; p99 measured no load of its own.
    assert len(rows) == 2
    assert rows[1] == "| intake unary | 1,000 | 500 | 1,500 | 0.75 |"
    assert "| load | services.intake | secantus | total | cores busy |" in text
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_the_results_give_the_brokers_memory_by_stage_in_order(tmp_path: Path) -> None:
    stages = {"ceilings": (121.0, 441.3), "intake": (440.2, 452.0), "batch": (450.0, 508.4)}
    text = report.write([], {}, "quick", tmp_path, broker_by_stage=stages).read_text()
    assert (
        "The broker's memory from the start of each stage to its peak, MB: ceilings 121 to 441,"
        " intake 440 to 452, batch 450 to 508." in text
    )
    saved = json.loads((tmp_path / "results.json").read_text())["broker_mb_by_stage"]
    assert list(saved) == ["ceilings", "intake", "batch"]
    assert saved["batch"] == {"start": 450.0, "peak": 508.4}


def test_the_chart_marks_the_number_each_target_names() -> None:
    assert report.target_number(">= 50%, backlog flat") == 50
    assert report.target_number("<= 25 ms") == 25
    assert report.target_number("") is None


def test_each_mode_writes_to_its_own_folder_unless_told_where() -> None:
    # A quick run leaves the committed full run's results (the README cites them) as they are.
    assert results_folder("quick", None) == Path("bench/results/quick")
    assert results_folder("full", None) == Path("bench/results/full")
    assert results_folder("quick", Path("/tmp/x")) == Path("/tmp/x")


def test_a_share_just_under_its_target_does_not_read_as_met(tmp_path: Path) -> None:
    figures = [Figure("unary", 2373.3, "/s", 4788.0, "no-op", ">= 50%", False)]
    text = report.write(figures, {}, "quick", tmp_path).read_text()
    assert "| 49.6% | >= 50% | **no** |" in text


def test_what_a_figure_was_measured_under_lands_in_the_json_as_numbers(tmp_path: Path) -> None:
    # The stored count and the offered rate used to live only inside the figures' names.
    figures = [
        Figure("p99 at half load", 41.0, "ms", conditions={"offered_per_s": 845.2,
                                                          "window_p99s_ms": [45.5, 36.7, 41.0]}),
        Figure("report p99", 17.7, "ms", conditions={"stored": 1_002_345}),
        Figure("end to end", 2_187.0, "/s", 7_454.0, conditions={"backlog_flat": False}),
    ]  # fmt: skip
    report.write(figures, {}, "quick", tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())["figures"]
    assert saved[0]["conditions"] == {"offered_per_s": 845.2, "window_p99s_ms": [45.5, 36.7, 41.0]}
    assert saved[1]["conditions"]["stored"] == 1_002_345
    assert saved[2]["conditions"] == {"backlog_flat": False}
