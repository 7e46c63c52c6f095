"""Every setting a process reads is in the README: a helper running the README found six of
them (SANAD_GRPC_HOST, SANAD_WATCH_POLL_S, SANAD_STREAM_MAX_INFLIGHT / _ITEMS,
SANAD_BATCH_PREFETCH, SANAD_BATCH_CHUNK) in the code alone."""

import re
from pathlib import Path

import pytest

from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

README = (Path(__file__).parents[2] / "README.md").read_text()
# Written out, or as a suffix after a variable of the same prefix: `SANAD_AUTH_JWT_ISSUER` is
# in "`SANAD_AUTH_JWT_PUBLIC_KEY_FILE` / `_ISSUER`".
NAMED = set(re.findall(r"`(SANAD_[A-Z0-9_]+)", README))
SUFFIXES = set(re.findall(r"`(_[A-Z0-9_]+)`", README))


def documented(variable: str) -> bool:
    if variable in NAMED:
        return True
    parts = variable.split("_")
    for cut in range(2, len(parts)):
        prefix, suffix = "_".join(parts[:cut]), "_" + "_".join(parts[cut:])
        if suffix in SUFFIXES and any(name.startswith(f"{prefix}_") for name in NAMED):
            return True
    return False


@pytest.mark.parametrize(
    "settings",
    [RegistrySettings, IntakeSettings, MetricsSettings, IngestSettings, BatchSettings],
)
def test_every_setting_of_every_process_is_in_the_readme(settings: type) -> None:
    missing = [
        f"SANAD_{name.upper()}"
        for name in settings.model_fields
        if not documented(f"SANAD_{name.upper()}")
    ]
    assert missing == []


def test_a_setting_left_out_is_found() -> None:
    assert not documented("SANAD_NOT_A_SETTING")
    assert documented("SANAD_AUTH_JWT_ISSUER")
