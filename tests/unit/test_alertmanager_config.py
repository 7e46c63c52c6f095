"""deploy/alertmanager/alertmanager.yml passes amtool, routes every alert of the rules by its
severity, and names only alerts and labels the rules give."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "sanad-alerts.yml"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
RECEIVERS = {"page": "sanad-page", "ticket": "sanad-ticket"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def grouped_by(rule: dict[str, Any]) -> set[str]:
    """The labels the rule's expression keeps (its first `by (...)`)."""
    return {label.strip() for label in re.findall(r"by \(([^)]*)\)", rule["expr"])[0].split(",")}


def test_amtool_accepts_the_configuration() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_reaches_the_receiver_of_its_severity(rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={RECEIVERS[severity]}",
        f"alertname={rule['alert']}",
        f"severity={severity}",
        "job=sanad-intake",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_inhibitions_name_alerts_and_labels_the_rules_give() -> None:
    # A renamed alert or label would silently end an inhibition.
    by_name = {rule["alert"]: rule for rule in rules()}
    inhibitions = config()["inhibit_rules"]
    assert inhibitions
    for inhibition in inhibitions:
        for side in ("source_matchers", "target_matchers"):
            matched = re.findall(r'^(\w+)=~?"', "\n".join(inhibition[side]), re.MULTILINE)
            [name] = re.findall(r'^alertname="(\w+)"$', "\n".join(inhibition[side]), re.MULTILINE)
            kept = grouped_by(by_name[name])
            assert set(matched) - {"alertname"} <= kept, (side, inhibition)
            assert set(inhibition["equal"]) <= kept, (side, inhibition)


def test_notifications_group_by_labels_the_rules_give() -> None:
    given = {"alertname"} | {
        label.strip()
        for rule in rules()
        for labels in re.findall(r"by \(([^)]*)\)", rule["expr"])
        for label in labels.split(",")
    }
    assert set(config()["route"]["group_by"]) <= given
