"""Test support: an issuer's signing key that names its kid, and the JWKS that publishes it."""

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sanad.security.credentials import issue_token
from sanad.security.identity import Identity, Role
from sanad.security.jwks import public_jwk

ROP = Identity("rop-systems", Role.MINISTRY, agency_code="ROP")


class SigningKey:
    """An issuer's key: signs tokens naming its kid, and is published as a JWKS entry."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.jwk = public_jwk(self.private.public_key())
        self.kid = self.jwk["kid"]

    def token(self, kid: str | None, identity: Identity = ROP) -> str:
        """A token signed by this key naming kid (any kid, or none)."""
        return issue_token(self.pem, identity, "sanad-mesh", "sanad-mesh", 600, kid=kid)

    def named(self) -> str:
        """A token naming this key's own kid."""
        return self.token(self.kid)


def jwks(*entries: dict[str, str]) -> bytes:
    """A JWKS document of these entries."""
    return json.dumps({"keys": list(entries)}).encode()
