"""E-service catalogue commands against the registry."""

import argparse

from google.protobuf import field_mask_pb2

from sanad.cli.arguments import int32, int64
from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, label, money
from sanad.cli.registry import add_paging, pages, print_page
from sanad.v1 import registry_pb2

CATALOG_STATUSES = ("active", "retired")
# Option attribute -> CatalogService field, in the order the update mask lists them.
UPDATABLE = (
    ("fee_baisa", "fee_baisa"),
    ("sla_hours", "sla_hours"),
    ("name_ar", "name_ar"),
    ("name_en", "name_en"),
    ("document", "required_documents"),
)


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the catalogue commands."""
    catalogue = commands.add_parser("catalogue", help="publish and inspect e-services")
    catalogue_commands = catalogue.add_subparsers(dest="action", required=True)
    add = catalogue_commands.add_parser("add", help="publish a new e-service")
    add.add_argument("--code", required=True)
    add.add_argument("--agency", required=True, help="owning agency code, e.g. ROP")
    add.add_argument("--name-ar", required=True)
    add.add_argument("--name-en", required=True)
    add.add_argument("--fee-baisa", type=int64, required=True)
    add.add_argument("--sla-hours", type=int32, required=True)
    add.add_argument("--document", action="append", default=[], help="required document")
    add.set_defaults(handler=add_catalog_service)
    show = catalogue_commands.add_parser("get", help="show an e-service")
    show.add_argument("code")
    show.set_defaults(handler=get_catalog_service)
    listing = catalogue_commands.add_parser("list", help="list e-services")
    listing.add_argument("--agency", default="", help="owning agency code, e.g. ROP")
    listing.add_argument("--status", choices=CATALOG_STATUSES)
    add_paging(listing)
    listing.set_defaults(handler=list_catalog_services)
    update = catalogue_commands.add_parser("update", help="change an e-service (new version)")
    update.add_argument("code")
    update.add_argument("--fee-baisa", type=int64)
    update.add_argument("--sla-hours", type=int32)
    update.add_argument("--name-ar")
    update.add_argument("--name-en")
    documents = update.add_mutually_exclusive_group()
    documents.add_argument(
        "--document", action="append", help="required document (repeatable; replaces the list)"
    )
    documents.add_argument(
        "--no-documents",
        dest="document",
        action="store_const",
        const=[],
        help="require no document any more (empties the list)",
    )
    update.set_defaults(handler=update_catalog_service, usage_error=update.error)
    retire = catalogue_commands.add_parser("retire", help="withdraw an e-service")
    retire.add_argument("code")
    retire.set_defaults(handler=retire_catalog_service)


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
    print_service(printer, response)
    return 0


def get_catalog_service(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetCatalogService."""
    request = registry_pb2.GetCatalogServiceRequest(code=args.code)
    response = client.call(client.registry().GetCatalogService, request)
    print_service(printer, response)
    return 0


def list_catalog_services(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """ListCatalogServices: one page, or every page with --all."""
    status = f"CATALOG_SERVICE_STATUS_{args.status.upper()}" if args.status else None
    request = registry_pb2.ListCatalogServicesRequest(agency_code=args.agency, status=status)
    rows = [["CODE", "AGENCY", "NAME_EN", "FEE", "SLA_HOURS", "VERSION", "STATUS"]]
    token = ""
    for page in pages(client, client.registry().ListCatalogServices, request, args):
        token = page.next_page_token
        for service in page.services:
            if printer.as_json:
                printer.message(service)
            rows.append([service.code, service.agency_code, service.name_en])
            rows[-1] += [money(service.fee_baisa), str(service.sla_hours), str(service.version)]
            rows[-1].append(service_status(service.status))
    print_page(printer, "services", rows, token)
    return 0


def update_catalog_service(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """UpdateCatalogService with a mask of exactly the options given."""
    service = registry_pb2.CatalogService(code=args.code)
    mask = field_mask_pb2.FieldMask()
    for option, field in UPDATABLE:
        value = getattr(args, option)
        if value is None:
            continue
        if field == "required_documents":
            service.required_documents.extend(value)
        else:
            setattr(service, field, value)
        mask.paths.append(field)
    if not mask.paths:
        args.usage_error(
            "give at least one of --fee-baisa, --sla-hours, --name-ar, --name-en, --document,"
            " --no-documents"
        )
    request = registry_pb2.UpdateCatalogServiceRequest(service=service, update_mask=mask)
    response = client.call(client.registry().UpdateCatalogService, request)
    print_service(printer, response)
    return 0


def retire_catalog_service(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """RetireCatalogService."""
    request = registry_pb2.RetireCatalogServiceRequest(code=args.code)
    response = client.call(client.registry().RetireCatalogService, request)
    print_service(printer, response)
    return 0


def print_service(printer: Printer, response: registry_pb2.GetCatalogServiceResponse) -> None:
    """A response carrying one catalogue service, as JSON or for people."""
    if printer.as_json:
        printer.message(response)
        return
    service = response.service
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
            ("status", service_status(service.status)),
        ]
    )


def service_status(value: int) -> str:
    """A catalogue service status for people."""
    return label(registry_pb2.CatalogServiceStatus.Name(value), "CATALOG_SERVICE_STATUS_")
