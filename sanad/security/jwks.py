"""Bearer-token verification keys: a JWKS document (RFC 7517) or, as before, one PEM public key.

A JWKS is what identity providers publish and what lets an issuer rotate: it lists the current
key and the next (or the previous) side by side, each named by its `kid`, and a token names the
key it was signed with in its header. A key set holds only asymmetric keys of the algorithms we
accept (ALGORITHMS); keys of other kinds, or meant for encryption, are skipped with a warning so
that a provider's full JWKS can be mounted as it is.
"""

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sanad.errors import Unauthenticated

log = logging.getLogger("sanad.security")

# The only signature algorithm accepted today; never `none`, never HS* (a public key is no secret).
ALGORITHMS = frozenset({"ES256"})
_CURVES = {"ES256": ec.SECP256R1}


class KeyFileError(ValueError):
    """A key file that holds no usable verification key; the message never quotes key material."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key, the algorithm it verifies, and its `kid` (None for a bare PEM key)."""

    kid: str | None
    algorithm: str
    key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class KeySet:
    """The keys tokens may be signed with, by kid; also a key source that never changes."""

    keys: tuple[VerificationKey, ...]

    def current(self) -> "KeySet":
        """Itself: a fixed set of keys."""
        return self

    def select(self, kid: object) -> VerificationKey:
        """The key a token header's kid names, or Unauthenticated.

        A token without a kid is checked against the one key of a single-key set. A bare PEM key
        has no kid, so it is tried for any kid: an issuer may start naming its keys first.
        """
        if kid is None:
            if len(self.keys) == 1:
                return self.keys[0]
            raise Unauthenticated(
                "bad bearer token: it names no key id (kid) and several keys verify"
            )
        if not isinstance(kid, str):
            raise Unauthenticated("bad bearer token: its key id (kid) is not a string")
        for key in self.keys:
            if key.kid == kid or key.kid is None:
                return key
        raise Unauthenticated(f"bad bearer token: unknown key id (kid) {kid[:64]!r}")


def parse_keys(data: bytes) -> KeySet:
    """A JWKS document (a JSON object with `keys`) or one PEM public key; KeyFileError else."""
    text = data.strip()
    if text.startswith(b"{"):
        return _parse_jwks(text)
    if text.startswith(b"-----BEGIN"):
        return KeySet((_pem_key(text),))
    raise KeyFileError("neither a JWKS document nor a PEM public key")


def _pem_key(data: bytes) -> VerificationKey:
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise KeyFileError("a PEM file without a readable public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError("a PEM public key that is not an ES256 (P-256) key")
    return VerificationKey(None, "ES256", key)


def _parse_jwks(data: bytes) -> KeySet:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise KeyFileError("a JWKS file that is not valid JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyFileError("a JWKS document without a `keys` list")
    keys = [key for index, entry in enumerate(entries) if (key := _jwk(index, entry))]
    if not keys:
        raise KeyFileError(f"a JWKS document without a usable {'/'.join(sorted(ALGORITHMS))} key")
    kids = [key.kid for key in keys]
    if len(keys) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise KeyFileError("a JWKS document of several keys where a kid is missing or repeated")
    return KeySet(tuple(keys))


def _jwk(index: int, entry: Any) -> VerificationKey | None:
    """One JWKS entry as a key; None (with a warning) for a key we do not verify with."""
    if not isinstance(entry, dict):
        raise KeyFileError(f"JWKS key {index} is not a JSON object")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeyFileError(f"JWKS key {index} has a kid that is not a string")
    if "d" in entry or entry.get("kty") == "oct":
        # A private or shared secret in a file every replica reads: a mistake to stop, not skip.
        raise KeyFileError(f"JWKS key {index} holds private or secret key material")
    algorithm = entry.get("alg") or _implied_algorithm(entry)
    if not isinstance(algorithm, str):
        raise KeyFileError(f"JWKS key {index} has an alg that is not a string")
    if entry.get("use", "sig") != "sig" or algorithm not in ALGORITHMS:
        log.warning("JWKS key %d (kid %r) skipped: not an accepted signing key", index, kid)
        return None
    try:
        key = jwt.PyJWK(entry, algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise KeyFileError(f"JWKS key {index} is not a valid {algorithm} public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, _CURVES[algorithm]
    ):
        raise KeyFileError(f"JWKS key {index} does not fit its algorithm {algorithm}")
    return VerificationKey(kid, algorithm, key)


def _implied_algorithm(entry: dict[str, Any]) -> str:
    """The algorithm a JWK without `alg` is used with: ES256 for a P-256 EC key."""
    return "ES256" if entry.get("kty") == "EC" and entry.get("crv") == "P-256" else ""


def public_jwk(key: ec.EllipticCurvePublicKey, algorithm: str = "ES256") -> dict[str, str]:
    """A P-256 public key as a JWKS entry, its kid the RFC 7638 thumbprint (same key, same
    kid)."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise TypeError("only P-256 keys are published")
    numbers = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(size, "big")),
        "y": _b64(numbers.y.to_bytes(size, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    thumbprint = _b64(hashlib.sha256(canonical).digest())
    return {**members, "kid": thumbprint, "use": "sig", "alg": algorithm}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
