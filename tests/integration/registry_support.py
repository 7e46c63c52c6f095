"""Registry records the integration tests register: one catalogue service, one centre."""

from sanad.v1 import registry_pb2


def visa_renewal(code: str, fee_baisa: int = 5000) -> registry_pb2.CatalogService:
    """An ROP catalogue service under `code`."""
    return registry_pb2.CatalogService(
        code=code,
        agency_code="ROP",
        name_ar="تجديد التأشيرة",
        name_en="Visa renewal",
        fee_baisa=fee_baisa,
        sla_hours=48,
    )


def centre(licence: str, *offered: str) -> registry_pb2.Center:
    """A centre in Nizwa holding licence number `licence`, offering the `offered` codes."""
    return registry_pb2.Center(
        name_ar="مركز أبراج الشرق",
        name_en="Abraj Al Sharq Centre",
        owner_establishment="مؤسسة أبراج الشرق الوطنية",
        governorate_code="DA",
        wilayat_code="DA-NIZ",
        omani_staff=3,
        total_staff=4,
        offered_service_codes=offered,
        licence=registry_pb2.Licence(number=licence),
    )
