"""`make run-secure` (SANAD_DEVSTACK_SECURE=1): the dev stack with mutual TLS and required auth.

Certificates come from `.certs/` (created by `make certs`, or here when missing). Every process
serves mutual TLS with its own service certificate and requires credentials; sanadctl uses the
example admin certificate (or any token from .certs/tokens/) as printed at start.
"""

from pathlib import Path

from sanad.security import certs

SECURE_KEY = "SANAD_DEVSTACK_SECURE"


def requested(env: dict[str, str]) -> bool:
    """True when the secure dev stack was asked for."""
    return env.get(SECURE_KEY, "") not in ("", "0", "false")


def prepare(folder: Path) -> dict[str, str]:
    """The settings every child shares; creates the dev PKI when it is missing."""
    if not (folder / "ca.pem").exists():
        certs.make_dev_pki(folder)
    root = folder.resolve()
    print(
        "devstack: secure mode (mutual TLS, auth required); for sanadctl:\n"
        f"  export SANAD_CA_FILE={root}/ca.pem SANAD_CERT_FILE={root}/admin.pem "
        f"SANAD_KEY_FILE={root}/admin.key",
        flush=True,
    )
    return {
        "SANAD_TLS_CA_FILE": str(root / "ca.pem"),
        "SANAD_TLS_CLIENT_AUTH": "true",
        "SANAD_AUTH_MODE": "required",
        "SANAD_AUTH_JWT_PUBLIC_KEY_FILE": str(root / "jwt-signing.pub.pem"),
        "SANAD_DEVSTACK_CERTS_DIR": str(root),
    }


def service_files(env: dict[str, str], child: str) -> dict[str, str]:
    """The certificate and key of one child process; nothing when not in secure mode."""
    folder = env.get("SANAD_DEVSTACK_CERTS_DIR")
    if not folder:
        return {}
    name = child if child in ("registry", "intake", "metrics") else "workers"
    return {
        "SANAD_TLS_CERT_FILE": f"{folder}/{name}.pem",
        "SANAD_TLS_KEY_FILE": f"{folder}/{name}.key",
    }
