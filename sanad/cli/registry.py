"""Centre and licence commands against the registry, and the paging they share."""

import argparse
from collections.abc import Callable, Iterator
from typing import Any

from sanad.cli.arguments import int32, int64
from sanad.cli.client import Client
from sanad.cli.output import Printer, label, when
from sanad.v1 import registry_pb2

LICENCE_ACTIONS = ("approve", "activate", "suspend", "reinstate", "renew", "cancel")
LICENCE_STATUSES = ("applied", "initially_approved", "active", "suspended", "expired", "cancelled")


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the centers and licence commands."""
    centers = commands.add_parser("centers", help="register and inspect centres")
    center_commands = centers.add_subparsers(dest="action", required=True)
    register = center_commands.add_parser("register", help="register a new centre")
    register.add_argument("--licence-number", required=True)
    register.add_argument("--name-ar", required=True)
    register.add_argument("--name-en", required=True)
    register.add_argument("--owner", required=True, help="owner establishment")
    register.add_argument("--governorate", required=True, help="governorate code, e.g. DA")
    register.add_argument("--wilayat", required=True, help="wilayat code, e.g. DA-NIZ")
    register.add_argument("--omani-staff", type=int32, required=True)
    register.add_argument("--total-staff", type=int32, required=True)
    register.add_argument("--service", action="append", default=[], help="offered service code")
    register.add_argument("--phone", default="")
    register.add_argument("--email", default="")
    register.set_defaults(handler=register_center)
    get = center_commands.add_parser("get", help="show a centre with its licence history")
    get.add_argument("id")
    get.set_defaults(handler=get_center)
    listing = center_commands.add_parser("list", help="list centres with filters and paging")
    listing.add_argument("--governorate", default="", help="governorate code, e.g. DA")
    listing.add_argument("--wilayat", default="", help="wilayat code, e.g. DA-NIZ")
    listing.add_argument("--status", choices=LICENCE_STATUSES, help="effective licence status")
    listing.add_argument(
        "--service", default="", help="a service code the centre offers and is not blocked from"
    )
    listing.add_argument("--query", default="", help="search in Arabic and English names")
    add_paging(listing)
    listing.set_defaults(handler=list_centers)
    services = center_commands.add_parser("services", help="replace offered and blocked services")
    services.add_argument("center_id")
    services.add_argument("--offer", action="append", default=[], metavar="CODE")
    services.add_argument("--block", action="append", default=[], metavar="CODE")
    services.add_argument(
        "--clear", action="store_true", help="offer and block no service (without --offer/--block)"
    )
    services.add_argument(
        "--revision",
        type=int64,
        metavar="N",
        help="the centre's revision as read (centers get): refused with ABORTED, changing "
        "nothing, if it changed since",
    )
    services.set_defaults(handler=set_center_services, usage_error=services.error)

    licence = commands.add_parser("licence", help="apply a licence lifecycle action")
    licence.add_argument("licence_action", choices=LICENCE_ACTIONS)
    licence.add_argument("center_id")
    licence.add_argument("--reason", required=True, help="why, recorded with the transition")
    licence.set_defaults(handler=transition_licence)


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


def list_centers(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """ListCenters: one page, or every page with --all."""
    status = f"LICENCE_STATUS_{args.status.upper()}" if args.status else None
    request = registry_pb2.ListCentersRequest(
        governorate_code=args.governorate,
        wilayat_code=args.wilayat,
        licence_status=status,
        service_code=args.service,
        query=args.query,
    )
    rows = [["ID", "NAME_EN", "NAME_AR", "WILAYAT", "LICENCE", "OMANI_STAFF"]]
    token = ""
    for page in pages(client, client.registry().ListCenters, request, args):
        token = page.next_page_token
        for center in page.centers:
            if printer.as_json:
                printer.message(center)
            rows.append([center.id, center.name_en, center.name_ar, center.wilayat_code])
            rows[-1] += [_licence_status(center.licence.status), str(center.omani_staff)]
    print_page(printer, "centers", rows, token)
    return 0


def set_center_services(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """SetCenterServices; both lists are replaced, with --revision only if nobody changed
    the centre since it was read. Empty lists only with --clear: a forgotten flag would
    otherwise withdraw every service the centre offers."""
    if args.clear and (args.offer or args.block):
        args.usage_error("--clear offers and blocks nothing: give it without --offer and --block")
    if not (args.clear or args.offer or args.block):
        args.usage_error("give at least one of --offer, --block, or --clear to empty both lists")
    request = registry_pb2.SetCenterServicesRequest(
        center_id=args.center_id,
        offered_service_codes=args.offer,
        blocked_service_codes=args.block,
        expected_revision=args.revision,
    )
    response = client.call(client.registry().SetCenterServices, request)
    if printer.as_json:
        printer.message(response)
    else:
        print_center(printer, response.center)
    return 0


def add_paging(parser: argparse.ArgumentParser) -> None:
    """--page-size, --page-token and --all on a list command."""
    parser.add_argument("--page-size", type=int32, default=0, metavar="N")
    parser.add_argument("--page-token", default="", metavar="TOKEN")
    parser.add_argument("--all", action="store_true", help="follow next_page_token to the end")


def pages(
    client: Client, method: Callable[..., Any], request: Any, args: argparse.Namespace
) -> Iterator[Any]:
    """The first page from --page-token; with --all, every following page too."""
    request.page_size = args.page_size
    request.page_token = args.page_token
    while True:
        page = client.call(method, request)
        yield page
        if not (args.all and page.next_page_token):
            return
        request.page_token = page.next_page_token


def print_page(printer: Printer, title: str, rows: list[list[str]], token: str) -> None:
    """Rows under a header for people, then the next page's token if one is left."""
    if printer.as_json:
        if token:
            printer.json({"next_page_token": token})
        return
    printer.table(title, rows if len(rows) > 1 else [])
    if token:
        printer.line(f"next_page_token: {token}")


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


def _licence_status(value: int) -> str:
    """A licence status for people."""
    return label(registry_pb2.LicenceStatus.Name(value), "LICENCE_STATUS_")
