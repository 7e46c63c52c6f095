"""Centre, licence and catalogue commands against the registry."""

import argparse

from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, label, when
from sanad.v1 import registry_pb2

LICENCE_ACTIONS = ("approve", "activate", "suspend", "reinstate", "renew", "cancel")


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the centers, licence and catalogue commands."""
    centers = commands.add_parser("centers", help="register and inspect centres")
    center_commands = centers.add_subparsers(dest="action", required=True)
    register = center_commands.add_parser("register", help="register a new centre")
    register.add_argument("--licence-number", required=True)
    register.add_argument("--name-ar", required=True)
    register.add_argument("--name-en", required=True)
    register.add_argument("--owner", required=True, help="owner establishment")
    register.add_argument("--governorate", required=True, help="governorate code, e.g. DA")
    register.add_argument("--wilayat", required=True, help="wilayat code, e.g. DA-NIZ")
    register.add_argument("--omani-staff", type=int, required=True)
    register.add_argument("--total-staff", type=int, required=True)
    register.add_argument("--service", action="append", default=[], help="offered service code")
    register.add_argument("--phone", default="")
    register.add_argument("--email", default="")
    register.set_defaults(handler=register_center)
    get = center_commands.add_parser("get", help="show a centre with its licence history")
    get.add_argument("id")
    get.set_defaults(handler=get_center)

    licence = commands.add_parser("licence", help="apply a licence lifecycle action")
    licence.add_argument("licence_action", choices=LICENCE_ACTIONS)
    licence.add_argument("center_id")
    licence.add_argument("--reason", default="")
    licence.set_defaults(handler=transition_licence)

    catalogue = commands.add_parser("catalogue", help="publish and inspect e-services")
    catalogue_commands = catalogue.add_subparsers(dest="action", required=True)
    add = catalogue_commands.add_parser("add", help="publish a new e-service")
    add.add_argument("--code", required=True)
    add.add_argument("--agency", required=True, help="owning agency code, e.g. ROP")
    add.add_argument("--name-ar", required=True)
    add.add_argument("--name-en", required=True)
    add.add_argument("--fee-baisa", type=int, required=True)
    add.add_argument("--sla-hours", type=int, required=True)
    add.add_argument("--document", action="append", default=[], help="required document")
    add.set_defaults(handler=add_catalog_service)
    show = catalogue_commands.add_parser("get", help="show an e-service")
    show.add_argument("code")
    show.set_defaults(handler=get_catalog_service)


def register_center(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """RegisterCenter; the new id comes first."""
    center = registry_pb2.Center(
        name_ar=args.name_ar,
        name_en=args.name_en,
        owner_establishment=args.owner,
        governorate_code=args.governorate,
        wilayat_code=args.wilayat,
        omani_staff=args.omani_staff,
        total_staff=args.total_staff,
        contact=registry_pb2.Contact(phone=args.phone, email=args.email),
        offered_service_codes=args.service,
        licence=registry_pb2.Licence(number=args.licence_number),
    )
    stub = client.registry()
    response = client.call(stub.RegisterCenter, registry_pb2.RegisterCenterRequest(center=center))
    if printer.as_json:
        printer.message(response)
    else:
        printer.line(f"id: {response.center.id}")
        print_center(printer, response.center, with_id=False)
    return 0


def get_center(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetCenter."""
    stub = client.registry()
    response = client.call(stub.GetCenter, registry_pb2.GetCenterRequest(id=args.id))
    if printer.as_json:
        printer.message(response)
    else:
        print_center(printer, response.center)
    return 0


def transition_licence(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """TransitionLicence with the chosen action."""
    request = registry_pb2.TransitionLicenceRequest(
        center_id=args.center_id,
        action=f"LICENCE_ACTION_{args.licence_action.upper()}",
        reason=args.reason,
    )
    response = client.call(client.registry().TransitionLicence, request)
    if printer.as_json:
        printer.message(response)
    else:
        print_center(printer, response.center)
    return 0


def add_catalog_service(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """AddCatalogService."""
    service = registry_pb2.CatalogService(
        code=args.code,
        agency_code=args.agency,
        name_ar=args.name_ar,
        name_en=args.name_en,
        fee_baisa=args.fee_baisa,
        sla_hours=args.sla_hours,
        required_documents=args.document,
    )
    request = registry_pb2.AddCatalogServiceRequest(service=service)
    response = client.call(client.registry().AddCatalogService, request)
    _print_service(printer, response)
    return 0


def get_catalog_service(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetCatalogService."""
    request = registry_pb2.GetCatalogServiceRequest(code=args.code)
    response = client.call(client.registry().GetCatalogService, request)
    _print_service(printer, response)
    return 0


def print_center(printer: Printer, center: registry_pb2.Center, with_id: bool = True) -> None:
    """A centre and its licence for people."""
    licence = center.licence
    pairs: list[tuple[str, object]] = [("id", center.id)] if with_id else []
    printer.fields(
        [
            *pairs,
            ("name_ar", center.name_ar),
            ("name_en", center.name_en),
            ("owner", center.owner_establishment),
            ("wilayat", f"{center.wilayat_code} ({center.governorate_code})"),
            ("staff", f"{center.omani_staff} Omani of {center.total_staff}"),
            ("services", ", ".join(center.offered_service_codes) or "-"),
            ("blocked", ", ".join(center.blocked_service_codes) or "-"),
            ("phone", center.contact.phone or "-"),
            ("email", center.contact.email or "-"),
            ("licence", licence.number),
            ("licence_status", _licence_status(licence.status)),
            ("expires_at", when(licence, "expires_at")),
            ("revision", center.revision),
        ]
    )
    rows = [
        [
            when(event, "time"),
            label(registry_pb2.LicenceAction.Name(event.action), "LICENCE_ACTION_"),
            f"{_licence_status(event.from_status)} -> {_licence_status(event.to_status)}",
            event.actor,
            event.reason,
        ]
        for event in licence.history
    ]
    printer.table("history", rows)


def _print_service(printer: Printer, response: registry_pb2.GetCatalogServiceResponse) -> None:
    """A catalogue service, as JSON or for people."""
    if printer.as_json:
        printer.message(response)
        return
    service = response.service
    status = registry_pb2.CatalogServiceStatus.Name(service.status)
    printer.fields(
        [
            ("code", service.code),
            ("agency", service.agency_code),
            ("name_ar", service.name_ar),
            ("name_en", service.name_en),
            ("fee", fee(service.fee_baisa)),
            ("sla_hours", service.sla_hours),
            ("documents", ", ".join(service.required_documents) or "-"),
            ("version", service.version),
            ("status", label(status, "CATALOG_SERVICE_STATUS_")),
        ]
    )


def _licence_status(value: int) -> str:
    """A licence status for people."""
    return label(registry_pb2.LicenceStatus.Name(value), "LICENCE_STATUS_")
