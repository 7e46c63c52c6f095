"""deploy/prometheus passes promtool: the config, the alert rules, and a unit test per alert."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sanad.devstack.layout import INGEST_METRICS_PORT
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings

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
@pytest.mark.parametrize("config", ["prometheus.yml", "local.yml"])
def test_the_scrape_configuration_is_valid(config: str) -> None:
    result = promtool("check", "config", config)
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


def test_the_local_configuration_scrapes_make_runs_processes_at_their_default_ports() -> None:
    """local.yml: the reference's jobs, metrics paths and rules, on 127.0.0.1 at the ports each
    process serves its metrics on by default, as `make run` starts them."""
    reference = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    local = yaml.safe_load((PROMETHEUS / "local.yml").read_text())
    defaults = {
        "sanad-registry": RegistrySettings.model_fields["registry_metrics_port"].default,
        "sanad-intake": IntakeSettings.model_fields["intake_metrics_port"].default,
        "sanad-metrics": MetricsSettings.model_fields["metrics_metrics_port"].default,
        "sanad-ingest": INGEST_METRICS_PORT,
        "sanad-batch": BatchSettings.model_fields["batch_metrics_port"].default,
        "rabbitmq": 15692,
    }
    assert local["rule_files"] == reference["rule_files"]
    jobs = {job["job_name"]: job for job in local["scrape_configs"]}
    assert jobs.keys() == {job["job_name"] for job in reference["scrape_configs"]}
    for job in reference["scrape_configs"]:
        mine = jobs[job["job_name"]]
        assert mine.get("metrics_path") == job.get("metrics_path")
        assert mine["static_configs"] == [{"targets": [f"127.0.0.1:{defaults[job['job_name']]}"]}]
