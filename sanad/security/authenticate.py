"""Who is calling: a bearer token, else a verified client certificate, else (dev) the dev admin."""

from collections.abc import Callable
from typing import Any, TypeVar

from sanad.errors import Unauthenticated
from sanad.runtime import StartupError
from sanad.security.credentials import TokenVerifier, identity_from_certificate
from sanad.security.identity import DEV_ADMIN, Identity
from sanad.security.jwks import KeyFileError
from sanad.security.key_file import ReloadingKeys
from sanad.security.revocation import RevocationFileError, RevokedCertificates, RevokedTokens
from sanad.settings import AuthMode, CommonSettings

AUTHORIZATION_KEY = "authorization"
BEARER = "bearer "
Watched = TypeVar("Watched")  # a file read again when it changes (sanad.security.watched_file)


class Authenticator:
    """Establishes the identity of one call from its metadata and TLS peer."""

    def __init__(
        self,
        mode: AuthMode,
        verifier: TokenVerifier | None,
        revoked: RevokedCertificates | None = None,
    ) -> None:
        self.mode = mode
        self.verifier = verifier
        self.revoked = revoked

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> "Authenticator":
        """Reads the JWT key file named by the settings, if any (a JWKS or one PEM key), and the
        revoked-tokens and revoked-certificates files, if any, and each again whenever it
        changes. A file that cannot be used stops the process here."""
        every_s = settings.auth_jwt_keys_reload_s
        if settings.auth_revoked_tokens_file and not settings.auth_jwt_public_key_file:
            raise StartupError(
                "SANAD_AUTH_REVOKED_TOKENS_FILE: set without SANAD_AUTH_JWT_PUBLIC_KEY_FILE,"
                " so no bearer token is accepted to refuse"
            )
        verifier = None
        if settings.auth_jwt_public_key_file:
            revoked_tokens = None
            if settings.auth_revoked_tokens_file:
                revoked_tokens = _at_start(
                    RevokedTokens,
                    settings.auth_revoked_tokens_file,
                    every_s,
                    "SANAD_AUTH_REVOKED_TOKENS_FILE",
                )
            verifier = TokenVerifier(
                _at_start(
                    ReloadingKeys,
                    settings.auth_jwt_public_key_file,
                    every_s,
                    "SANAD_AUTH_JWT_PUBLIC_KEY_FILE",
                ),
                settings.auth_jwt_issuer,
                settings.auth_jwt_audience,
                settings.auth_jwt_max_lifetime_s,
                revoked_tokens,
            )
        revoked = None
        if settings.auth_revoked_certs_file:
            revoked = _at_start(
                RevokedCertificates,
                settings.auth_revoked_certs_file,
                every_s,
                "SANAD_AUTH_REVOKED_CERTS_FILE",
            )
        return cls(settings.auth_mode, verifier, revoked)

    def identify(self, context: Any) -> Identity:
        """The caller, or Unauthenticated for a bad credential or (required mode) none. A
        revoked client certificate is refused whatever bearer token comes with it: whoever
        holds its key is no longer trusted on the connection it opened."""
        pem = self.refuse_revoked(context)
        token = _bearer(context.invocation_metadata())
        if token is not None:
            if self.verifier is None:
                raise Unauthenticated("bearer tokens are not accepted here")
            return self.verifier.verify(token)
        if pem is not None:
            return identity_from_certificate(pem)
        if self.mode is AuthMode.DEV:
            return DEV_ADMIN
        raise Unauthenticated("no credential: send a client certificate or a bearer token")

    def refuse_revoked(self, context: Any) -> bytes | None:
        """The call's client certificate (PEM), None without one; Unauthenticated when it is
        revoked. Also for health and reflection, which need no identity: whoever holds a
        revoked certificate's key is trusted with no call."""
        certificates = context.auth_context().get("x509_pem_cert")
        pem = bytes(certificates[0]) if certificates else None
        if pem is not None and self.revoked is not None and self.revoked.names(pem):
            raise Unauthenticated("the client certificate has been revoked")
        return pem


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


def _at_start(
    kind: Callable[[str, float], Watched], path: str, every_s: float, setting: str
) -> Watched:
    """A watched file, read once as the process starts: a file it cannot read or whose content
    is refused stops it, with one line naming the setting."""
    try:
        return kind(path, every_s)
    except OSError as error:
        reason = f"cannot read {path}: {error.strerror}"
    except (KeyFileError, RevocationFileError) as error:
        reason = f"{path}: {error}"
    raise StartupError(f"{setting}: {reason}")
