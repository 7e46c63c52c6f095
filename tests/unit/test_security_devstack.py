"""The dev stack gives every child mutual TLS, required auth and its own certificate by default."""

import subprocess
from pathlib import Path

from sanad.devstack import secure
from sanad.devstack.__main__ import given_targets, moved_targets


def test_secure_mode_is_the_default_and_plaintext_is_opt_in() -> None:
    assert not secure.plaintext({})
    assert not secure.plaintext({"SANAD_DEVSTACK_PLAINTEXT": "0"})
    assert secure.plaintext({"SANAD_DEVSTACK_PLAINTEXT": "1"})
    assert secure.service_files({}, "registry") == {}


def test_prepare_creates_the_pki_and_names_each_childs_certificate(tmp_path: Path) -> None:
    env = secure.prepare(tmp_path / "certs", "amqp://guest:guest@127.0.0.1:5672/")
    assert env["SANAD_AUTH_MODE"] == "required"
    assert env["SANAD_TLS_CLIENT_AUTH"] == "true"
    assert Path(env["SANAD_TLS_CA_FILE"]).exists()
    intake = secure.service_files(env, "intake")
    assert Path(intake["SANAD_TLS_CERT_FILE"]).name == "intake.pem"
    worker = secure.service_files(env, "ingest-2")
    assert Path(worker["SANAD_TLS_KEY_FILE"]).name == "workers.key"
    assert Path(worker["SANAD_TLS_KEY_FILE"]).exists()


def test_prepare_keeps_an_existing_pki(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    secure.ensure_pki(folder)
    before = (folder / "ca.pem").read_bytes()
    secure.prepare(folder, "amqp://guest:guest@127.0.0.1:5672/")
    assert (folder / "ca.pem").read_bytes() == before


def test_the_dev_broker_user_is_trusted_to_submit_batches_for_any_centre(tmp_path: Path) -> None:
    env = secure.prepare(tmp_path / "certs", "amqp://loader:secret@mq:5672/sanad")
    assert env["SANAD_BATCH_TRUSTED_USERS"] == "loader"


def test_the_client_env_file_sets_the_admin_or_clears_every_credential(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    secured = tmp_path / "secure.env"
    secured.write_text(secure.client_env_file(secure.admin_client_env(folder)))
    plain = tmp_path / "plain.env"
    plain.write_text(secure.client_env_file({}))
    script = (
        f"export SANAD_TOKEN=old SANAD_CA_FILE=old; source {secured}; "
        'echo "$SANAD_CA_FILE|$SANAD_CERT_FILE|${SANAD_TOKEN-unset}"; '
        f'source {plain}; echo "${{SANAD_CA_FILE-unset}}|${{SANAD_TOKEN-unset}}"'
    )
    shown = subprocess.run(
        ["bash", "-c", script], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert shown == [f"{folder}/ca.pem|{folder}/admin.pem|unset", "unset|unset"]


def test_a_service_moved_to_another_port_is_reached_there_by_the_stack_and_sanadctl(
    tmp_path: Path,
) -> None:
    env = {"SANAD_INTAKE_PORT": "23052", "SANAD_METRICS_PORT": "23053",
           "SANAD_METRICS_TARGET": "metrics.example:443"}  # fmt: skip
    moved = moved_targets(env)
    # A target given stays; one of a moved port follows it; an unmoved service keeps its own.
    assert moved == {"SANAD_INTAKE_TARGET": "127.0.0.1:23052"}
    moved_env = tmp_path / "moved.env"
    moved_env.write_text(secure.client_env_file(moved))
    unmoved_env = tmp_path / "unmoved.env"
    unmoved_env.write_text(secure.client_env_file({}))
    script = (
        f'source {moved_env}; echo "$SANAD_INTAKE_TARGET"; '
        f'source {unmoved_env}; echo "${{SANAD_INTAKE_TARGET-unset}}"'
    )
    shown = subprocess.run(
        ["bash", "-c", script], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert shown == ["127.0.0.1:23052", "unset"]


def test_a_target_given_to_the_stack_is_the_one_sanadctl_is_given() -> None:
    # Both port and target given, as a stack on other ports is started: sanadctl.env unset
    # the targets, and sanadctl reached the default ports (fuzz helper).
    env = {"SANAD_REGISTRY_PORT": "56051", "SANAD_REGISTRY_TARGET": "127.0.0.1:56051"}
    assert given_targets(env) == {"SANAD_REGISTRY_TARGET": "127.0.0.1:56051"}
    written = secure.client_env_file({**moved_targets(env), **given_targets(env)})
    assert "SANAD_REGISTRY_TARGET=127.0.0.1:56051" in written.replace("'", "")
    assert "unset SANAD_REGISTRY_TARGET" not in written
