"""Turn a credential into an Identity: a client certificate or an ES256 JWT bearer token.

Certificates: CN is the subject, OU the role, and a URI SAN `urn:sanad:agency:<code>` or
`urn:sanad:center:<id>` the scope. Tokens carry `sub`, `role`, and `agency` or `center`.
A ministry without an agency, or a centre or batch identity without a centre, is refused.
"""

import functools
import time

import jwt
from cryptography import x509
from cryptography.x509.oid import NameOID

from sanad.errors import Unauthenticated
from sanad.security.identity import Identity, Role

AGENCY_URI = "urn:sanad:agency:"
CENTER_URI = "urn:sanad:center:"
ALGORITHM = "ES256"


def scoped(subject: str, role_name: str, agency_code: str, center_id: str) -> Identity:
    """An Identity, refused unless its role and scope fit together."""
    try:
        role = Role(role_name)
    except ValueError:
        raise Unauthenticated(f"unknown role {role_name[:32]!r}") from None
    if not subject:
        raise Unauthenticated("credential without a subject")
    if role is Role.MINISTRY and not agency_code:
        raise Unauthenticated("a ministry credential names its agency")
    if role in (Role.CENTRE, Role.BATCH) and not center_id:
        raise Unauthenticated(f"a {role} credential names its centre")
    return Identity(subject, role, agency_code=agency_code, center_id=center_id)


@functools.lru_cache(maxsize=1024)
def identity_from_certificate(pem: bytes) -> Identity:
    """The identity a verified client certificate names."""
    certificate = x509.load_pem_x509_certificate(pem)
    subject = _attribute(certificate.subject, NameOID.COMMON_NAME)
    role = _attribute(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    agency = center = ""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    for uri in uris:
        if uri.startswith(AGENCY_URI):
            agency = uri.removeprefix(AGENCY_URI)
        elif uri.startswith(CENTER_URI):
            center = uri.removeprefix(CENTER_URI)
    return scoped(subject, role, agency, center)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else ""


class TokenVerifier:
    """Checks ES256 bearer tokens against one public key, issuer and audience, and that none
    lives longer than max_lifetime_s from its iat (or from now, without one) to its exp: a
    leaked token is good that long at most."""

    def __init__(
        self,
        public_key_pem: bytes,
        issuer: str,
        audience: str,
        max_lifetime_s: int,
    ) -> None:
        self.public_key_pem = public_key_pem
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_s = max_lifetime_s

    def verify(self, token: str) -> Identity:
        """The token's identity, or Unauthenticated for a bad, expired or foreign token."""
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"bad bearer token: {type(error).__name__}") from None
        issued = claims.get("iat", time.time())
        if not isinstance(issued, int | float) or claims["exp"] - issued > self.max_lifetime_s:
            raise Unauthenticated(
                f"bad bearer token: it lives longer than {self.max_lifetime_s} s"
            ) from None
        return scoped(
            str(claims["sub"]),
            str(claims.get("role", "")),
            str(claims.get("agency", "")),
            str(claims.get("center", "")),
        )


def issue_token(
    private_key_pem: bytes, identity: Identity, issuer: str, audience: str, ttl_s: int
) -> str:
    """A signed bearer token for an identity; used by `make certs` and tests."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": identity.subject,
        "role": str(identity.role),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    if identity.agency_code:
        claims["agency"] = identity.agency_code
    if identity.center_id:
        claims["center"] = identity.center_id
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)
