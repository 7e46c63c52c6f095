"""deploy/README.md names every deployable that watches the registry wherever it says who does:
metrics follows the registry's centres too, and its NetworkPolicy already lets it."""

import re
from pathlib import Path

import pytest

from sanad.settings import CommonSettings
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

README = " ".join((Path(__file__).parents[2] / "deploy" / "README.md").read_text().split())
# Every deployable but the registry itself, as the README calls it.
CALLED: dict[str, tuple[type[CommonSettings], str]] = {
    "intake": (IntakeSettings, "intake"),
    "metrics": (MetricsSettings, "metrics"),
    "ingest": (IngestSettings, "ingest worker"),
    "batch": (BatchSettings, "batch worker"),
}
# Its settings name the registry's address: it follows the registry's watch streams.
CLIENTS = {
    name for name, (settings, _) in CALLED.items() if "registry_target" in settings.model_fields
}
CLAIMS = [
    "watch the registry)",
    "may reach the registry (50051)",
    "expect `registry.sanad.svc.cluster.local` in the registry's certificate",
]


def who(claim: str) -> str:
    """The subject of the clause that ends in claim: the text since the last ';', '(' or '. '."""
    before = README[: README.index(claim)]
    return re.split(r"[;(]|\. ", before)[-1].lower()


def test_the_registry_clients_are_intake_metrics_and_the_batch_worker() -> None:
    assert sorted(CLIENTS) == ["batch", "intake", "metrics"]


@pytest.mark.parametrize("claim", CLAIMS)
def test_deploy_readme_names_exactly_the_registry_clients(claim: str) -> None:
    subject = who(claim)
    named = {name for name, (_, called) in CALLED.items() if called.split()[0] in subject}
    assert named == CLIENTS, subject
