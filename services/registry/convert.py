"""protobuf <-> registry domain objects; the only place that knows both."""

from typing import Any

from sanad.domain.clock import utcnow
from sanad.errors import Invalid, Violation
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import registry_pb2 as pb
from services.registry.domain import (
    CatalogService,
    CatalogStatus,
    Center,
    Contact,
    Licence,
    LicenceAction,
    LicenceStatus,
)
from services.registry.listing import CenterFilter, ServiceFilter


def center_from_proto(message: pb.Center) -> Center:
    return Center(
        id=message.id,
        name_ar=message.name_ar.strip(),
        name_en=message.name_en.strip(),
        owner_establishment=message.owner_establishment.strip(),
        governorate_code=message.governorate_code,
        wilayat_code=message.wilayat_code,
        omani_staff=message.omani_staff,
        total_staff=message.total_staff,
        contact=Contact(message.contact.phone, message.contact.email, message.contact.address),
        offered_service_codes=tuple(message.offered_service_codes),
        blocked_service_codes=tuple(message.blocked_service_codes),
        licence=Licence(number=message.licence.number.strip()),
    )


def center_to_proto(center: Center) -> pb.Center:
    lic = center.licence
    return pb.Center(
        id=center.id,
        name_ar=center.name_ar,
        name_en=center.name_en,
        owner_establishment=center.owner_establishment,
        governorate_code=center.governorate_code,
        wilayat_code=center.wilayat_code,
        omani_staff=center.omani_staff,
        total_staff=center.total_staff,
        contact=pb.Contact(
            phone=center.contact.phone, email=center.contact.email, address=center.contact.address
        ),
        offered_service_codes=center.offered_service_codes,
        blocked_service_codes=center.blocked_service_codes,
        licence=pb.Licence(
            number=lic.number,
            status=f"LICENCE_STATUS_{lic.effective_status(utcnow())}",
            expires_at=to_timestamp(lic.expires_at),
            history=[
                pb.LicenceEvent(
                    action=f"LICENCE_ACTION_{e.action}",
                    from_status=f"LICENCE_STATUS_{e.from_status}",
                    to_status=f"LICENCE_STATUS_{e.to_status}",
                    actor=e.actor,
                    reason=e.reason,
                    time=to_timestamp(e.time),
                    expires_at=to_timestamp(e.expires_at),
                )
                for e in lic.history
            ],
        ),
        revision=center.revision,
        create_time=to_timestamp(center.create_time),
        update_time=to_timestamp(center.update_time),
    )


def expected_revision(
    request: pb.UpdateCenterRequest | pb.SetCenterServicesRequest,
) -> int | None:
    """The revision the caller read, or None when it sent none (no concurrency check)."""
    return request.expected_revision if request.HasField("expected_revision") else None


def licence_status_from_proto(value: int, field: str) -> LicenceStatus | None:
    name = _enum_name(pb.LicenceStatus, value, "LICENCE_STATUS_", field)
    return None if name == "UNSPECIFIED" else LicenceStatus(name)


def licence_action_from_proto(value: int, field: str) -> LicenceAction:
    name = _enum_name(pb.LicenceAction, value, "LICENCE_ACTION_", field)
    if name == "UNSPECIFIED":
        raise Invalid([Violation(field, "choose a licence action")])
    return LicenceAction(name)


def center_filter_from_proto(request: pb.ListCentersRequest) -> CenterFilter:
    return CenterFilter(
        governorate_code=request.governorate_code,
        wilayat_code=request.wilayat_code,
        licence_status=licence_status_from_proto(request.licence_status, "licence_status"),
        service_code=request.service_code,
        query=request.query,
    )


def service_filter_from_proto(request: pb.ListCatalogServicesRequest) -> ServiceFilter:
    return ServiceFilter(
        agency_code=request.agency_code,
        status=catalog_status_from_proto(request.status, "status"),
    )


def service_from_proto(message: pb.CatalogService) -> CatalogService:
    return CatalogService(
        code=message.code.strip(),
        agency_code=message.agency_code,
        name_ar=message.name_ar.strip(),
        name_en=message.name_en.strip(),
        fee_baisa=message.fee_baisa,
        sla_hours=message.sla_hours,
        required_documents=tuple(message.required_documents),
    )


def service_to_proto(service: CatalogService) -> pb.CatalogService:
    return pb.CatalogService(
        code=service.code,
        agency_code=service.agency_code,
        name_ar=service.name_ar,
        name_en=service.name_en,
        fee_baisa=service.fee_baisa,
        sla_hours=service.sla_hours,
        required_documents=service.required_documents,
        version=service.version,
        status=f"CATALOG_SERVICE_STATUS_{service.status}",
        revision=service.revision,
        create_time=to_timestamp(service.create_time),
        update_time=to_timestamp(service.update_time),
    )


def catalog_status_from_proto(value: int, field: str) -> CatalogStatus | None:
    name = _enum_name(pb.CatalogServiceStatus, value, "CATALOG_SERVICE_STATUS_", field)
    return None if name == "UNSPECIFIED" else CatalogStatus(name)


def _enum_name(enum: Any, value: int, prefix: str, field: str) -> str:
    # A number this build does not know is the caller's mistake, not an internal error.
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError as error:
        raise Invalid([Violation(field, f"unknown value {value}")]) from error
