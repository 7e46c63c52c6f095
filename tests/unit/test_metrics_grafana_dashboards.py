"""The committed Grafana dashboards are exactly what the generator makes, and well formed."""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from sanad.amqp.metrics import ITEM_OUTCOMES

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")}


def all_exprs() -> list[str]:
    return [
        target["expr"]
        for board in committed().values()
        for panel in board["panels"]  # type: ignore[attr-defined]
        for target in panel["targets"]
    ]


def test_committed_json_equals_the_generated_json() -> None:
    generated = generator().dashboards()
    on_disk = {
        p.name: p.read_text(encoding="utf-8") for p in (GRAFANA / "dashboards").glob("*.json")
    }
    assert on_disk == generated, "run: python deploy/grafana/generate.py"


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    boards = committed()
    assert set(boards) == {"sanad-operations.json", "sanad-centres.json", "sanad-award.json"}
    assert len({b["uid"] for b in boards.values()}) == 3


def test_every_panel_has_datasource_targets_unique_id_and_grid_position() -> None:
    datasource_uid = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    for name, board in committed().items():
        panels = board["panels"]
        ids = [p["id"] for p in panels]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids)), name
        for panel in panels:  # type: ignore[attr-defined]
            assert panel["title"], name
            assert panel["description"], panel["title"]
            assert panel["datasource"]["uid"] == datasource_uid
            grid = panel["gridPos"]
            assert set(grid) == {"h", "w", "x", "y"}
            assert grid["x"] + grid["w"] <= 24
            assert panel["targets"], panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))
            for target in panel["targets"]:
                assert target["expr"].strip()
                assert target["datasource"]["uid"] == datasource_uid


def test_panels_do_not_overlap() -> None:
    for board in committed().values():
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:  # type: ignore[attr-defined]
            g = panel["gridPos"]
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, panel["title"]
            cells |= mine


def test_every_latency_panel_reads_unary_calls_only() -> None:
    # A stream's handling time is its whole life; a watch would pass for a very slow call.
    latency = [e for e in all_exprs() if "sanad_grpc_server_handling_seconds" in e]
    assert latency
    for expr in latency:
        assert 'grpc_type="unary"' in expr, expr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"sanad:panel_query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(all_exprs())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_provider_points_grafana_at_a_dashboards_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sanad.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]


def failed_calls(expr: str) -> set[frozenset[str]]:
    """The label matchers of each handled-calls selector that picks failures (by grpc_code)."""
    found = re.findall(r"sanad_grpc_server_handled_total\{([^}]*grpc_code[^}]*)\}", expr)
    return {frozenset(m.strip() for m in selector.split(",")) for selector in found}


def test_the_error_ratio_panel_counts_the_failures_its_alert_counts() -> None:
    # The panel says "Alert above 5%": it drew calls to unknown methods at 100%, which the
    # alert leaves out (alerts helper).
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/sanad-alerts.yml").read_text())
    [alert] = [
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "SanadHighErrorRatio"
    ]
    [panel] = [
        target["expr"]
        for panel in committed()["sanad-operations.json"]["panels"]  # type: ignore[attr-defined]
        if panel["title"] == "Server error ratio by service"
        for target in panel["targets"]
    ]
    assert failed_calls(panel) == failed_calls(alert)
    assert 'sanad_grpc_server_handled_total{grpc_service!="unknown"}' in panel


def panel_exprs(board: str, title: str) -> list[str]:
    """The queries of one panel of a committed dashboard, in their order."""
    return [
        target["expr"]
        for panel in committed()[board]["panels"]  # type: ignore[attr-defined]
        if panel["title"] == title
        for target in panel["targets"]
    ]


def evaluate(
    tmp_path: Path,
    expr: str,
    series: list[dict[str, str]],
    eval_time: str,
    expected: list[dict[str, object]],
    *,
    interval: str = "1m",
) -> None:
    """promtool evaluates a panel's query (at a 1m rate interval) over synthetic series and
    finds exactly the expected samples."""
    (tmp_path / "none.yml").write_text("groups: []\n")
    test = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": interval,
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr.replace("$__rate_interval", "1m"),
                        "eval_time": eval_time,
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "panel-test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def histogram(metric: str, labels: str, bounds: tuple[str, ...], per_step: dict[str, int]) -> list:
    """Input series of a histogram's buckets: per_step[bound] observations fall in the bucket
    that ends at bound at every step (cumulative over the bounds, as a client exports them)."""
    series, below = [], 0
    for bound in (*bounds, "+Inf"):
        below += per_step.get(bound, 0)
        series.append(
            {"series": f'{metric}_bucket{{{labels}, le="{bound}"}}', "values": f"0+{below}x10"}
        )
    return series


@needs_promtool
def test_the_rejected_share_panel_is_the_awards_rejection_rate(tmp_path: Path) -> None:
    # A day in which a wilayat completed 90, rejected 10 and cancelled 100 transactions: the
    # award's rejection rate is 10 / (90 + 10) (services/metrics/award.py). The panel divided
    # by every finished transaction, cancelled ones included, and drew 0.05 (metrics hunt).
    [panel] = panel_exprs("sanad-award.json", "Rejected share by wilayat (last 24 h)")
    per_hour = {"completed": 90 / 24, "rejected": 10 / 24, "cancelled": 100 / 24}
    series = [
        {
            "series": f'sanad_transactions_finished_total{{wilayat="DA-NIZ",outcome="{outcome}"}}',
            "values": f"0+{rate}x24",
        }
        for outcome, rate in per_hour.items()
    ]
    expected: list[dict[str, object]] = [{"labels": '{wilayat="DA-NIZ"}', "value": 0.1}]
    evaluate(tmp_path, panel, series, "24h", expected, interval="1h")


LAG_BOUNDS = ("0.05", "0.1", "300", "900")


@needs_promtool
def test_the_storage_lag_panel_reads_each_worker_apart(tmp_path: Path) -> None:
    # The ingest worker stores each submission within 0.1 s; the batch worker's items all carry
    # their batch's start, so the last chunks of a large batch are stored ten minutes "late" by
    # design (as SanadSubmissionsStoredLate says, reading the ingest worker alone). The panel
    # drew one p99 over both workers, 888 s, with the ingest worker keeping up (panels hunt).
    [lag, _confirm] = panel_exprs(
        "sanad-operations.json", "Submission to storage, and broker confirm (p99)"
    )
    metric = "sanad_transaction_recorded_lag_seconds"
    series = [
        *histogram(metric, 'job="sanad-ingest"', LAG_BOUNDS, {"0.1": 600}),
        *histogram(metric, 'job="sanad-batch"', LAG_BOUNDS, {"900": 600}),
    ]
    expected: list[dict[str, object]] = [
        {"labels": '{job="sanad-ingest"}', "value": 0.05 + 0.05 * 0.99},
        {"labels": '{job="sanad-batch"}', "value": 300 + 600 * 0.99},
    ]
    evaluate(tmp_path, lag, series, "10m", expected)


LAST_HOUR_COUNTS = [
    ("Dead-lettered, retried and refused in the last hour", 0, "sanad_amqp_dead_lettered_total"),
    ("Dead-lettered, retried and refused in the last hour", 1, "sanad_worker_retries_total"),
    (
        "Dead-lettered, retried and refused in the last hour",
        2,
        'sanad_amqp_published_total{outcome="refused"}',
    ),
    (
        "Dead-lettered, retried and refused in the last hour",
        3,
        "sanad_batch_refusals_unanswered_total",
    ),
    ("Audit events waiting and lost", 1, "sanad_audit_events_lost_total"),
]


@needs_promtool
@pytest.mark.parametrize(("title", "index", "counter"), LAST_HOUR_COUNTS)
def test_the_last_hours_counts_are_whole_events(
    tmp_path: Path, title: str, index: int, counter: str
) -> None:
    # Four events, scraped every 45 s, read 66 min 40 s in: increase() extrapolates them to
    # the window's end and the stat read 4.045 dead letters (panels hunt).
    expr = panel_exprs("sanad-operations.json", title)[index]
    name, _, matchers = counter.partition("{")
    labels = matchers.rstrip("}") + ", " if matchers else ""
    series = [
        {"series": f'{name}{{{labels}job="sanad-ingest", queue="P.ingest"}}', "values": "0x40 4x50"}
    ]
    evaluate(tmp_path, expr, series, "66m40s", [{"labels": "{}", "value": 4}], interval="45s")


def panel_description(board: str, title: str) -> str:
    [description] = [
        panel["description"]
        for panel in committed()[board]["panels"]  # type: ignore[attr-defined]
        if panel["title"] == title
    ]
    return str(description)


def test_the_batch_items_panel_names_the_outcomes_its_counter_has() -> None:
    # It said "accepted or refused"; items are accepted or rejected, batches refused (panels hunt).
    description = panel_description("sanad-centres.json", "Batch items by outcome")
    assert [o for o in ITEM_OUTCOMES if o not in description] == []


def test_the_retries_count_says_it_counts_micro_batches() -> None:
    # sanad_worker_retries_total counts tries of a micro-batch, not messages (panels hunt).
    title = "Dead-lettered, retried and refused in the last hour"
    assert "micro-batch" in panel_description("sanad-operations.json", title)
    [legend] = [
        target["legendFormat"]
        for panel in committed()["sanad-operations.json"]["panels"]  # type: ignore[attr-defined]
        if panel["title"] == title
        for target in panel["targets"]
        if "sanad_worker_retries_total" in target["expr"]
    ]
    assert "micro-batch" in legend
