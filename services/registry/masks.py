"""Field masks of the Update RPCs: which paths may change, and applying them to an entity."""

from dataclasses import fields, replace

from sanad.errors import Invalid, Violation
from services.registry.domain import CatalogService, Center

MASK_FIELD = "update_mask"

CENTER_PATHS = frozenset(
    {
        "name_ar",
        "name_en",
        "owner_establishment",
        "governorate_code",
        "wilayat_code",
        "omani_staff",
        "total_staff",
        "contact",
        "contact.phone",
        "contact.email",
        "contact.address",
    }
)
SERVICE_PATHS = frozenset({"name_ar", "name_en", "fee_baisa", "sla_hours", "required_documents"})

# Fields that exist but change through their own RPC or never.
_CENTER_ELSEWHERE = {
    "licence": "changes through TransitionLicence",
    # No RPC changes it: the number is the licence (a new one is a new registration).
    "licence.number": "cannot be changed: a licence keeps its number",
    "offered_service_codes": "changes through SetCenterServices",
    "blocked_service_codes": "changes through SetCenterServices",
}
_SERVICE_ELSEWHERE = {"status": "changes through RetireCatalogService"}


def check_mask(
    paths: list[str], allowed: frozenset[str], known: frozenset[str], elsewhere: dict[str, str]
) -> frozenset[str]:
    """The mask's paths, or Invalid on update_mask naming every path that may not change."""
    if not paths:
        raise Invalid([Violation(MASK_FIELD, "list the fields to change")])
    found: list[Violation] = []
    for path in paths:
        if path in allowed:
            continue
        root = path.split(".", 1)[0]
        if path in elsewhere:
            reason = elsewhere[path]
        elif root in elsewhere:
            reason = elsewhere[root]
        elif root in allowed:  # a subfield of a message that changes, which it does not have
            reason = "is not a field"
        elif root in known:
            reason = "cannot be changed"
        else:
            reason = "is not a field"
        found.append(Violation(MASK_FIELD, f"{path!r} {reason}"))
    if found:
        raise Invalid(found)
    return frozenset(paths)


def center_mask(paths: list[str]) -> frozenset[str]:
    """Checked paths of an UpdateCenter mask."""
    known = frozenset(f.name for f in fields(Center))
    return check_mask(paths, CENTER_PATHS, known, _CENTER_ELSEWHERE)


def service_mask(paths: list[str]) -> frozenset[str]:
    """Checked paths of an UpdateCatalogService mask."""
    known = frozenset(f.name for f in fields(CatalogService))
    return check_mask(paths, SERVICE_PATHS, known, _SERVICE_ELSEWHERE)


def apply_center_mask(current: Center, patch: Center, paths: frozenset[str]) -> Center:
    """current with the masked fields taken from patch; "contact" replaces the whole contact."""
    top = {p: getattr(patch, p) for p in paths if "." not in p and p != "contact"}
    contact = current.contact
    if "contact" in paths:
        contact = patch.contact
    else:
        parts = {p.split(".", 1)[1] for p in paths if p.startswith("contact.")}
        contact = replace(contact, **{part: getattr(patch.contact, part) for part in parts})
    return replace(current, contact=contact, **top)


def apply_service_mask(
    current: CatalogService, patch: CatalogService, paths: frozenset[str]
) -> CatalogService:
    """current with the masked fields taken from patch."""
    return replace(current, **{path: getattr(patch, path) for path in paths})
