"""How `make run` protects the dev stack: mutual TLS and required credentials, issued at start.

By default every process serves mutual TLS with its own service certificate from the dev PKI in
`.certs/` (created by `make certs`, or here when missing) and refuses calls without credentials.
`sanadctl` uses the example admin certificate: `source .data/sanadctl.env` sets it, and the
tokens in `.certs/tokens/` act as other identities. SANAD_DEVSTACK_PLAINTEXT=1 runs the old
plaintext stack with an implicit dev admin instead; every process logs which it runs at start.
"""

import os
from pathlib import Path

from sanad.devstack import certs
from sanad.security.batch_users import broker_user

PLAINTEXT_KEY = "SANAD_DEVSTACK_PLAINTEXT"
CERTS_DIR_KEY = "SANAD_DEVSTACK_CERTS_DIR"
CLIENT_KEYS = ("SANAD_CA_FILE", "SANAD_CERT_FILE", "SANAD_KEY_FILE", "SANAD_TOKEN")
# Where sanadctl finds each service: set by `make run` only for a service moved to another port.
TARGET_KEYS = ("SANAD_REGISTRY_TARGET", "SANAD_INTAKE_TARGET", "SANAD_METRICS_TARGET")


def plaintext(env: dict[str, str]) -> bool:
    """True when the plaintext dev stack was asked for."""
    return env.get(PLAINTEXT_KEY, "") not in ("", "0", "false")


# What the stack reads from a kept dev PKI: the services' files, the token key, sanadctl's admin.
NEEDED_FILES = (
    "ca.pem",
    "jwt-signing.pub.pem",
    *(f"{name}.{kind}" for name in (*certs.SERVICES, "admin") for kind in ("pem", "key")),
)


class IncompletePki(RuntimeError):
    """A kept dev PKI lacks files the stack needs."""


def ensure_pki(folder: Path) -> None:
    """Create the dev PKI unless one is there already; a kept one's secrets are made
    owner-only (certs.restrict). IncompletePki names what a kept one lacks."""
    if problem := pki_problem(folder):
        raise IncompletePki(problem)
    if not (folder / "ca.pem").exists():
        certs.make_dev_pki(folder)
    else:
        certs.restrict(folder)


def pki_problem(folder: Path) -> str | None:
    """What a kept dev PKI (one with ca.pem) lacks, and what to do; None when it is whole or
    there is none yet (ensure_pki then creates it)."""
    if not (folder / "ca.pem").exists():
        return None
    missing = [name for name in NEEDED_FILES if not (folder / name).is_file()]
    if not missing:
        return None
    return (
        f"the dev PKI in {folder}/ lacks {', '.join(missing)}: replace it with"
        f" `python -m sanad.devstack.certs --out {folder} --force` (certificates and tokens"
        f" issued from the old one stop working), or remove {folder}/ and start again"
    )


def admin_client_env(folder: Path) -> dict[str, str]:
    """The sanadctl settings that act as the example admin over mutual TLS."""
    return {
        "SANAD_CA_FILE": str(folder / "ca.pem"),
        "SANAD_CERT_FILE": str(folder / "admin.pem"),
        "SANAD_KEY_FILE": str(folder / "admin.key"),
    }


def prepare(folder: Path, amqp_url: str) -> dict[str, str]:
    """The settings every child shares in secure mode; creates the dev PKI when it is missing.

    The dev broker account (guest) is trusted to submit batches for any centre so that
    `make demo` and `sanadctl batch submit` work; production refuses that account anyway.
    """
    ensure_pki(folder)
    return {
        "SANAD_TLS_CA_FILE": str(folder / "ca.pem"),
        "SANAD_TLS_CLIENT_AUTH": "true",
        "SANAD_AUTH_MODE": "required",
        "SANAD_AUTH_JWT_PUBLIC_KEY_FILE": str(folder / "jwt-signing.pub.pem"),
        "SANAD_BATCH_TRUSTED_USERS": broker_user(amqp_url),
        CERTS_DIR_KEY: str(folder),
    }


def service_files(env: dict[str, str], child: str) -> dict[str, str]:
    """The certificate and key of one child process; nothing in plaintext mode."""
    folder = env.get(CERTS_DIR_KEY)
    if not folder:
        return {}
    name = child if child in ("registry", "intake", "metrics") else "workers"
    return {
        "SANAD_TLS_CERT_FILE": f"{folder}/{name}.pem",
        "SANAD_TLS_KEY_FILE": f"{folder}/{name}.key",
    }


def client_env_file(settings: dict[str, str]) -> str:
    """A shell file that points sanadctl at the running stack: `source .data/sanadctl.env`."""
    lines = ["# Written by `make run`: sanadctl's credentials for the running stack."]
    lines += [f"unset {key}" for key in (*CLIENT_KEYS, *TARGET_KEYS) if key not in settings]
    lines += [f"export {key}={_quoted(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def write_client_env(path: Path, settings: dict[str, str]) -> None:
    """client_env_file() into path, readable by its owner alone: the broker URL in it may
    carry a password. A file an earlier run left readable by others is narrowed first."""
    if path.exists():
        path.chmod(0o600)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(client_env_file(settings))


def _quoted(value: str) -> str:
    """value in single quotes for the shell, a quote in it too (a password may hold one)."""
    return "'" + value.replace("'", "'\\''") + "'"
