"""The secure dev stack gives every child mutual TLS, required auth and its own certificate."""

from pathlib import Path

import pytest

from sanad.devstack import secure


def test_secure_mode_is_opt_in() -> None:
    assert not secure.requested({})
    assert not secure.requested({"SANAD_DEVSTACK_SECURE": "0"})
    assert secure.requested({"SANAD_DEVSTACK_SECURE": "1"})
    assert secure.service_files({}, "registry") == {}


def test_prepare_creates_the_pki_and_names_each_childs_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = secure.prepare(tmp_path / "certs")
    assert env["SANAD_AUTH_MODE"] == "required"
    assert env["SANAD_TLS_CLIENT_AUTH"] == "true"
    assert Path(env["SANAD_TLS_CA_FILE"]).exists()
    assert "SANAD_CERT_FILE=" in capsys.readouterr().out
    intake = secure.service_files(env, "intake")
    assert Path(intake["SANAD_TLS_CERT_FILE"]).name == "intake.pem"
    worker = secure.service_files(env, "ingest-2")
    assert Path(worker["SANAD_TLS_KEY_FILE"]).name == "workers.key"
    assert Path(worker["SANAD_TLS_KEY_FILE"]).exists()
