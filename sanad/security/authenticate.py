"""Who is calling: a bearer token, else a verified client certificate, else (dev) the dev admin."""

from typing import Any

from sanad.errors import Unauthenticated
from sanad.runtime import StartupError
from sanad.security.credentials import TokenVerifier, identity_from_certificate
from sanad.security.identity import DEV_ADMIN, Identity
from sanad.security.jwks import KeyFileError
from sanad.security.key_file import ReloadingKeys
from sanad.settings import AuthMode, CommonSettings

AUTHORIZATION_KEY = "authorization"
BEARER = "bearer "


class Authenticator:
    """Establishes the identity of one call from its metadata and TLS peer."""

    def __init__(self, mode: AuthMode, verifier: TokenVerifier | None) -> None:
        self.mode = mode
        self.verifier = verifier

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> "Authenticator":
        """Reads the JWT key file named by the settings, if any (a JWKS or one PEM key), and
        again whenever it changes. A file without a usable key stops the process here."""
        verifier = None
        if settings.auth_jwt_public_key_file:
            verifier = TokenVerifier(
                _keys_at_start(settings.auth_jwt_public_key_file, settings.auth_jwt_keys_reload_s),
                settings.auth_jwt_issuer,
                settings.auth_jwt_audience,
                settings.auth_jwt_max_lifetime_s,
            )
        return cls(settings.auth_mode, verifier)

    def identify(self, context: Any) -> Identity:
        """The caller, or Unauthenticated for a bad credential or (required mode) none."""
        token = _bearer(context.invocation_metadata())
        if token is not None:
            if self.verifier is None:
                raise Unauthenticated("bearer tokens are not accepted here")
            return self.verifier.verify(token)
        certificates = context.auth_context().get("x509_pem_cert")
        if certificates:
            return identity_from_certificate(bytes(certificates[0]))
        if self.mode is AuthMode.DEV:
            return DEV_ADMIN
        raise Unauthenticated("no credential: send a client certificate or a bearer token")


def source(context: Any) -> str:
    """Whom a call that failed authentication is charged to (its rate-limit bucket): the
    identity of the client certificate it came with, which TLS verified whatever its bearer
    token was, else its peer's address without the port."""
    certificates = context.auth_context().get("x509_pem_cert")
    address = f"peer:{_host(context.peer())}"
    if not certificates:
        return address
    try:
        return identity_from_certificate(bytes(certificates[0])).actor
    except Exception:  # a certificate naming no usable identity, whatever the fault
        return address


def _host(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> 'ipv4:10.0.0.7' (and so for ipv6); any other peer as it is."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return f"{kind}:{address.rpartition(':')[0]}"
    return peer


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            if not isinstance(value, str) or not value.lower().startswith(BEARER):
                raise Unauthenticated("authorization metadata is not a bearer token")
            return value[len(BEARER) :].strip()
    return None


def _keys_at_start(path: str, every_s: float) -> ReloadingKeys:
    """The key file, read once as the process starts: a file it cannot read or that holds no
    usable key stops it, with one line naming the setting."""
    try:
        return ReloadingKeys(path, every_s)
    except OSError as error:
        reason = f"cannot read {path}: {error.strerror}"
    except KeyFileError as error:
        reason = f"{path}: {error}"
    raise StartupError(f"SANAD_AUTH_JWT_PUBLIC_KEY_FILE: {reason}")
