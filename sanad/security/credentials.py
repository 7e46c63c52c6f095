"""Turn a credential into an Identity: a client certificate or an ES256 JWT bearer token.

Tokens are verified with the key their header's `kid` names (sanad.security.jwks).

Certificates: CN is the subject, OU the role, and a URI SAN `urn:sanad:agency:<code>` or
`urn:sanad:center:<id>` the scope. Tokens carry `sub`, `role`, and `agency` or `center`.
Each role carries exactly its own scope (DESIGN §6): a ministry its agency, a centre or batch
identity its centre, any other role none. A credential without its role's scope, or naming
another (a centre desk's with an agency), was issued wrong and is refused: the scope decides
whom the caller acts for and what its actor is (its rate, its streams, its request ids).
"""

import functools
import time
from typing import Protocol

import jwt
from cryptography import x509
from cryptography.x509.oid import NameOID

from sanad.domain.characters import id_violations, visible
from sanad.errors import Unauthenticated
from sanad.security.identity import Identity, Role
from sanad.security.jwks import KeySet
from sanad.security.revocation import RevokedTokens

AGENCY_URI = "urn:sanad:agency:"
CENTER_URI = "urn:sanad:center:"
ALGORITHM = "ES256"
TIMES = ("exp", "iat", "nbf")  # a token's NumericDate claims
SCOPES = ("role", "agency", "center")  # a token's text claims of its identity


def scoped(subject: str, role_name: str, agency_code: str, center_id: str) -> Identity:
    """An Identity, refused unless its role and scope fit together."""
    try:
        role = Role(role_name)
    except ValueError:
        raise Unauthenticated(f"unknown role {role_name[:32]!r}") from None
    if not subject:
        raise Unauthenticated("credential without a subject")
    if (problem := subject_problem(subject)) is not None:
        # A certificate's CN as a token's sub: issued by another tool or CA, a look-alike of
        # another caller's name went into the audit trail beside it.
        raise Unauthenticated(f"the credential's subject {problem}")
    centred = role in (Role.CENTRE, Role.BATCH)
    if role is Role.MINISTRY and not agency_code:
        raise Unauthenticated("a ministry credential names its agency")
    if centred and not center_id:
        raise Unauthenticated(f"a {role} credential names its centre")
    if agency_code and role is not Role.MINISTRY:
        raise Unauthenticated(f"{_a(role)} credential names no agency")
    if center_id and not centred:
        raise Unauthenticated(f"{_a(role)} credential names no centre")
    return Identity(subject, role, agency_code=agency_code, center_id=center_id)


def subject_problem(subject: str) -> str | None:
    """Why a credential's subject cannot name its caller, or None. It names the caller in the
    audit trail and the logs: as a request id, it shows as it is and no two subjects print
    alike (no control, invisible or look-alike character), and it is bounded."""
    if not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
        return f"must be text of 1 to {MAX_SUBJECT_LENGTH} characters"
    if id_violations({"sub": subject}) or not visible(subject):
        return "holds a control, invisible or look-alike character"
    if subject.startswith("#") or " #" in subject:
        # The revoked-tokens file reads such a "#" as the start of a comment: the subject could
        # not be revoked, and its line revoked what came before the "#" (ops #2 revoked ops).
        return "holds a '#' at its start or after a space, which no revocation could name"
    return None


def _a(role: Role) -> str:
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"


@functools.lru_cache(maxsize=1024)
def identity_from_certificate(pem: bytes) -> Identity:
    """The identity a verified client certificate names."""
    certificate = x509.load_pem_x509_certificate(pem)
    subject = _attribute(certificate.subject, NameOID.COMMON_NAME, "subject (CN)")
    role = _attribute(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    agency = _one_scope(uris, AGENCY_URI, "agency")
    center = _one_scope(uris, CENTER_URI, "centre")
    return scoped(subject, role, agency, center)


def _one_scope(uris: list[str], prefix: str, kind: str) -> str:
    """The scope of this kind a certificate names, if any; one naming two acts for neither.
    The prefix is matched in any case, as a URN's scheme and namespace are (RFC 8141): a second
    centre written URN:SANAD:CENTER:C2 went unseen, and the certificate acted for the first."""
    found = {uri[len(prefix) :] for uri in uris if uri[: len(prefix)].lower() == prefix}
    if len(found) > 1:
        raise Unauthenticated(f"a certificate names more than one {kind}")
    return found.pop() if found else ""


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier, label: str) -> str:
    """The subject's one value of this attribute ("" without one); a certificate with two acts
    as neither: it was taken as its first, so OU=operator, OU=admin acted as an operator and
    OU=admin, OU=centre as an admin."""
    found = name.get_attributes_for_oid(oid)
    if len(found) > 1:
        raise Unauthenticated(f"a certificate names more than one {label}")
    return str(found[0].value) if found else ""


class KeySource(Protocol):
    """Where the verification keys come from: a fixed KeySet, or a file read again on change."""

    def current(self) -> KeySet:
        """The keys in use now."""
        ...


class TokenVerifier:
    """Checks bearer tokens against the key their header's kid names, issuer and audience, and
    that none lives longer than max_lifetime_s from its iat (or from now, without one) to its
    exp: a leaked token is good that long at most. Each key verifies only its own algorithm,
    one of jwks.ALGORITHMS, whatever the token's header claims."""

    def __init__(
        self,
        keys: KeySource,
        issuer: str,
        audience: str,
        max_lifetime_s: int,
        revoked: RevokedTokens | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_s = max_lifetime_s
        self.revoked = revoked

    def verify(self, token: str) -> Identity:
        """The token's identity, or Unauthenticated for a bad, expired or foreign token."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"bad bearer token: {_refusal(error)}") from None
        key = self.keys.current().select(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"bad bearer token: {_refusal(error)}") from None
        # PyJWT takes a time as text too ("1767225600"): ours must be numbers (RFC 7519).
        for claim in TIMES:
            if claim in claims and not _is_number(claims[claim]):
                raise Unauthenticated(f"bad bearer token: its {claim} must be a number")
        # Nor may a scope be anything but text: str() made "None" of a null centre, a centre
        # no token named, where a missing or empty one is refused below.
        for claim in SCOPES:
            if claim in claims and not isinstance(claims[claim], str):
                raise Unauthenticated(f"bad bearer token: its {claim} must be text")
        if claims["exp"] - claims.get("iat", time.time()) > self.max_lifetime_s:
            raise Unauthenticated(
                f"bad bearer token: it lives longer than {self.max_lifetime_s} s"
            ) from None
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise Unauthenticated(
                f"bad bearer token: its sub must be text of 1 to {MAX_SUBJECT_LENGTH} characters"
            )
        if (problem := subject_problem(subject)) is not None:
            raise Unauthenticated(f"bad bearer token: its sub {problem}")
        if self.revoked is not None and self.revoked.refuses(subject, claims.get("iat")):
            raise Unauthenticated("the bearer token has been revoked")
        return scoped(
            subject,
            claims.get("role", ""),
            claims.get("agency", ""),
            claims.get("center", ""),
        )


# What a token names its caller by, in the audit trail and the logs (a certificate's common name
# is at most 64).
MAX_SUBJECT_LENGTH = 256
# Why PyJWT refused a token, as its caller is told: PyJWT's class names were shown before.
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet"),
    (jwt.InvalidAudienceError, "it is not meant for this service (aud)"),
    (jwt.InvalidIssuerError, "it is not from the trusted issuer (iss)"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.InvalidAlgorithmError, "its algorithm is not its key's"),
    (jwt.DecodeError, "it is not a well-formed token"),
)


def _refusal(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"it lacks its {error.claim} claim"
    for kind, refusal in _REFUSALS:
        if isinstance(error, kind):
            return refusal
    return "it cannot be verified"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def issue_token(
    private_key_pem: bytes,
    identity: Identity,
    issuer: str,
    audience: str,
    ttl_s: int,
    *,
    kid: str | None = None,
) -> str:
    """A signed bearer token for an identity, naming its key's kid if given; for `make certs`
    and tests."""
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
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM, headers=headers)
