"""What the List RPCs filter on, as plain values the store turns into queries."""

from dataclasses import dataclass

from services.registry.domain import CatalogStatus, LicenceStatus


@dataclass(frozen=True)
class CenterFilter:
    """Filters of ListCenters; empty values match everything."""

    governorate_code: str = ""
    wilayat_code: str = ""
    # Effective status: an ACTIVE licence past its expiry counts as EXPIRED.
    licence_status: LicenceStatus | None = None
    service_code: str = ""
    query: str = ""


@dataclass(frozen=True)
class ServiceFilter:
    """Filters of ListCatalogServices; empty values match everything."""

    agency_code: str = ""
    status: CatalogStatus | None = None


CENTER_PAGE_DEFAULT, CENTER_PAGE_MAX = 50, 500
# Longer than any centre's name; the query becomes a pattern, and databases cap their length.
CENTER_QUERY_MAX = 200
SERVICE_PAGE_DEFAULT, SERVICE_PAGE_MAX = 100, 1000
