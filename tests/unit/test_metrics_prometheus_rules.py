"""deploy/prometheus passes promtool: the config, the alert rules, and a unit test per alert."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def alert_names() -> set[str]:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "sanad-alerts.yml").read_text())
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


@needs_promtool
def test_the_scrape_configuration_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", *sorted(str(p) for p in PROMETHEUS.glob("rules/*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rule_unit_tests_pass() -> None:
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in PROMETHEUS.glob("tests/*.test.yml"))
    result = promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_exercised_by_a_unit_test_that_expects_it_to_fire() -> None:
    fired: set[str] = set()
    for path in PROMETHEUS.glob("tests/*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert alert_names() == fired


def test_latency_objectives_read_unary_calls_only() -> None:
    # A stream's handling time is its whole life; a watch would pass for a very slow call.
    rules = yaml.safe_load((PROMETHEUS / "rules" / "sanad-alerts.yml").read_text())
    selectors = [
        selector
        for group in rules["groups"]
        for rule in group["rules"]
        for selector in re.findall(
            r"sanad_grpc_server_handling_seconds\w*(?:\{[^}]*\})?", rule["expr"]
        )
    ]
    assert selectors
    assert [s for s in selectors if 'grpc_type="unary"' not in s] == []


def test_every_process_and_the_broker_are_scraped() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    ports = {
        job["job_name"]: target.rsplit(":", 1)[1]
        for job in config["scrape_configs"]
        for target in job["static_configs"][0]["targets"]
    }
    assert ports == {
        "sanad-registry": "9101",
        "sanad-intake": "9102",
        "sanad-metrics": "9103",
        "sanad-ingest": "9104",
        "sanad-batch": "9105",
        "rabbitmq": "15692",
    }
