"""A deployable refused its settings says why, a line per problem, and exits 2; no traceback."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sanad.runtime import settings_problems
from services.intake.settings import IntakeSettings

DEPLOYABLES = [
    "services.registry",
    "services.intake",
    "services.metrics",
    "workers.ingest",
    "workers.batch",
]


def run_with(module: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SANAD_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_intake_in_production_with_dev_defaults_names_every_unsafe_setting() -> None:
    result = run_with("services.intake", SANAD_PROFILE="production")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert "intake: cannot start: production refuses the default SANAD_CIVIL_ID_SECRET" in lines
    assert "intake: cannot start: production refuses RabbitMQ's default guest account" in lines
    assert all(line.startswith("intake: cannot start: production refuses ") for line in lines)
    assert len(lines) > 2


@pytest.mark.parametrize("module", DEPLOYABLES)
def test_every_deployable_refuses_a_bad_value_in_one_line(module: str) -> None:
    result = run_with(module, SANAD_PROFILE="staging", SANAD_LOG_PLAIN="1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    name = module.split(".")[1]
    assert result.stderr.splitlines() == [
        f"{name}: cannot start: SANAD_PROFILE: Input should be 'dev' or 'production'"
    ]


def test_a_refused_value_is_named_by_its_variable_but_never_shown() -> None:
    with pytest.raises(ValidationError) as refused:
        IntakeSettings(intake_port="secret-looking-value", pack_max_items="x")
    problems = settings_problems(refused.value)
    assert [problem.split(":")[0] for problem in problems] == [
        "SANAD_INTAKE_PORT",
        "SANAD_PACK_MAX_ITEMS",
    ]
    assert not any("secret-looking-value" in problem for problem in problems)


def test_metrics_names_the_award_settings_that_disagree() -> None:
    result = run_with(
        "services.metrics",
        SANAD_AWARD_WEIGHT_SPEED="1.5",
        SANAD_AWARD_WEIGHT_QUALITY="-0.5",
        SANAD_AWARD_WEIGHT_PRODUCTIVITY="0.25",
        SANAD_AWARD_MEDIAN_CEILING_HOURS="0",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "metrics: cannot start: SANAD_AWARD_WEIGHT_SPEED: must be between 0 and 1",
        "metrics: cannot start: SANAD_AWARD_WEIGHT_QUALITY: must be between 0 and 1",
        "metrics: cannot start: SANAD_AWARD_WEIGHT_SPEED + SANAD_AWARD_WEIGHT_QUALITY"
        " + SANAD_AWARD_WEIGHT_PRODUCTIVITY + SANAD_AWARD_WEIGHT_SATISFACTION:"
        " the award weights must sum to 1, not 1.4",
        "metrics: cannot start: SANAD_AWARD_MEDIAN_CEILING_HOURS: must be greater than zero",
    ]
