"""The one policy table: which roles may call every RPC, which RPCs change state, what they target.

Decisions (DESIGN section 6, issue #7):
- Registry reads (reference data, centres, catalogue, watch streams) are open to every role that
  works with transactions, and to `service` identities (intake, the batch worker and metrics
  keep their copies of the registry through the watch streams).
- Centre registration, updates and licence transitions need `admin` or a ministry of the
  licensing agency (SANAD_AUTH_LICENSING_AGENCY, default MOCIIP: the Ministry of Commerce,
  Industry and Investment Promotion licenses and supervises Sanad centres).
- Catalogue additions: `admin`, the licensing ministry, or a ministry for a service of its own
  agency (the request names the agency). Updates: the table admits admins and ministries, and
  the registry checks the stored service's agency (may_change_catalogue), which no request
  field can name falsely. Retiring needs admin or the licensing ministry.
- Transactions: the table admits the roles; intake's object rules (services/intake/access.py)
  decide which centre or agency a caller may act for.
- Operators read statistics only (MetricsService); a centre reads its own statistics and the
  leaderboard.
- The audit trail is admin-only. Health and reflection are open to everyone.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sanad.security.identity import Identity, Role

REGISTRY = "/sanad.v1.RegistryService/"
INTAKE = "/sanad.v1.IntakeService/"
METRICS = "/sanad.v1.MetricsService/"
AUDIT = "/sanad.v1.AuditService/"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# (identity, request or None for client streams, licensing agency) -> allowed
Limit = Callable[[Identity, Any, str], bool]


@dataclass(frozen=True)
class Rule:
    """Who may call one RPC; `changes` puts it on the audit trail with its target fields."""

    roles: frozenset[Role]
    changes: bool = False
    targets: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    limit: Limit | None = None
    # A client-streaming call whose items each change state: each item gets an event of its own
    # naming these fields of the item, and the results above (sanad.security.audit_items).
    item_targets: tuple[str, ...] = ()


def _licensing(identity: Identity, request: Any, licensing: str) -> bool:
    return identity.role is not Role.MINISTRY or identity.agency_code == licensing


def _own_catalogue(identity: Identity, request: Any, licensing: str) -> bool:
    # The agency a new service will belong to, as the request names it.
    agency = request.service.agency_code if request is not None else ""
    return may_change_catalogue(identity, agency, licensing)


def may_change_catalogue(identity: Identity, agency_code: str, licensing: str) -> bool:
    """Admins and the licensing ministry change any agency's services; a ministry its own."""
    if identity.may_act_for_agency(agency_code):
        return True
    return identity.role is Role.MINISTRY and identity.agency_code == licensing


def _own_center(identity: Identity, request: Any, licensing: str) -> bool:
    if identity.role is not Role.CENTRE:
        return True
    return request is not None and request.center_id == identity.center_id


ADMIN, MINISTRY, CENTRE = Role.ADMIN, Role.MINISTRY, Role.CENTRE
BATCH, OPERATOR, SERVICE = Role.BATCH, Role.OPERATOR, Role.SERVICE

_READ_REGISTRY = Rule(frozenset({ADMIN, MINISTRY, CENTRE, BATCH, SERVICE}))
_TRANSACTION_READ = Rule(frozenset({ADMIN, MINISTRY, CENTRE, BATCH}))
_STATISTICS = Rule(frozenset({ADMIN, OPERATOR, MINISTRY}))


def _centre_write(*targets: str) -> Rule:
    return Rule(frozenset({ADMIN, MINISTRY}), True, targets, limit=_licensing)


POLICY: dict[str, Rule] = {
    REGISTRY + "ListGovernorates": _READ_REGISTRY,
    REGISTRY + "ListWilayats": _READ_REGISTRY,
    REGISTRY + "ListAgencies": _READ_REGISTRY,
    REGISTRY + "GetCenter": _READ_REGISTRY,
    REGISTRY + "ListCenters": _READ_REGISTRY,
    REGISTRY + "GetCatalogService": _READ_REGISTRY,
    REGISTRY + "ListCatalogServices": _READ_REGISTRY,
    REGISTRY + "WatchCatalog": _READ_REGISTRY,
    REGISTRY + "WatchCenters": _READ_REGISTRY,
    REGISTRY + "RegisterCenter": Rule(
        frozenset({ADMIN, MINISTRY}),
        True,
        ("center.licence.number",),
        # The number as kept (canonical: upper case, ASCII digits) replaces the one as sent,
        # so the trail is searched by the number the registry shows.
        ("center.id", "center.licence.number"),
        _licensing,
    ),
    REGISTRY + "UpdateCenter": _centre_write("center.id"),
    REGISTRY + "TransitionLicence": _centre_write("center_id", "action"),
    REGISTRY + "SetCenterServices": _centre_write("center_id"),
    REGISTRY + "AddCatalogService": Rule(
        frozenset({ADMIN, MINISTRY}), True, ("service.code",), limit=_own_catalogue
    ),
    # The owner is the stored service's agency, checked by the registry (may_change_catalogue):
    # an update names no agency (the mask cannot change it), so the table cannot judge it.
    REGISTRY + "UpdateCatalogService": Rule(frozenset({ADMIN, MINISTRY}), True, ("service.code",)),
    REGISTRY + "RetireCatalogService": _centre_write("code"),
    INTAKE + "SubmitTransaction": Rule(
        frozenset({ADMIN, MINISTRY, CENTRE, BATCH}),
        True,
        ("request_id", "center_id", "service_code"),
        ("transaction_id",),
    ),
    INTAKE + "SubmitTransactions": Rule(
        frozenset({ADMIN, MINISTRY, CENTRE, BATCH}),
        True,
        results=("transaction_id",),
        item_targets=("request_id", "center_id", "service_code"),
    ),
    INTAKE + "GetTransaction": _TRANSACTION_READ,
    INTAKE + "ListTransactions": _TRANSACTION_READ,
    INTAKE + "WatchTransaction": _TRANSACTION_READ,
    INTAKE + "UpdateTransactionStatus": Rule(
        frozenset({ADMIN, MINISTRY}), True, ("id", "status", "request_id")
    ),
    INTAKE + "CancelTransaction": Rule(
        frozenset({ADMIN, MINISTRY, CENTRE}), True, ("id", "request_id")
    ),
    INTAKE + "RateTransaction": Rule(frozenset({ADMIN, CENTRE}), True, ("id",)),
    METRICS + "GetCenterStats": Rule(
        frozenset({ADMIN, OPERATOR, MINISTRY, CENTRE}), limit=_own_center
    ),
    METRICS + "GetWilayatStats": _STATISTICS,
    METRICS + "GetGovernorateReport": _STATISTICS,
    METRICS + "GetAwardLeaderboard": Rule(frozenset({ADMIN, OPERATOR, MINISTRY, CENTRE})),
    AUDIT + "ListAuditEvents": Rule(frozenset({ADMIN})),
}


def is_open(method: str) -> bool:
    """Health and reflection need no identity."""
    return method.startswith(OPEN_PREFIXES)


def admits(rule: Rule, identity: Identity) -> bool:
    """True when the identity's role may call the rule's method at all, whatever it asks."""
    return identity.role in rule.roles


def allows(rule: Rule, identity: Identity, request: Any, licensing: str) -> bool:
    """True when the identity's role is admitted and the rule's limit (if any) agrees."""
    if not admits(rule, identity):
        return False
    return rule.limit is None or rule.limit(identity, request, licensing)


def field_values(message: Any, paths: tuple[str, ...]) -> dict[str, str]:
    """The named (dotted) fields of a message as strings, for the audit trail."""
    found: dict[str, str] = {}
    if message is None:
        return found
    for path in paths:
        value = _field(message, path.split("."))
        if value:
            found[path] = value[:200]
    return found


def audit_target(
    message: Any, targets: tuple[str, ...], results: tuple[str, ...], named: Mapping[str, str]
) -> dict[str, str]:
    """The target an audit event keeps: the message's `targets` fields and those of the results
    it `named` that the policy lists in `results` (each at most 200 characters, empty ones left
    out)."""
    target = field_values(message, targets)
    target.update({k: v[:200] for k, v in named.items() if k in results and v})
    return target


def _field(message: Any, parts: list[str]) -> str:
    """One dotted field as text; enum values by name. A message that is not a protobuf (a
    streamed item as its handler reads it) gives its string attributes."""
    for part in parts[:-1]:
        message = getattr(message, part, None)
    described = getattr(message, "DESCRIPTOR", None)
    if described is None:
        value = getattr(message, parts[-1], None)
        return value if isinstance(value, str) else ""
    if parts[-1] not in described.fields_by_name:
        return ""
    value = getattr(message, parts[-1])
    enum = described.fields_by_name[parts[-1]].enum_type
    if enum is not None:
        known = enum.values_by_number.get(value)
        return known.name if known is not None else str(value)
    return str(value)
