"""sanadctl centre listing, catalogue changes and the catalogue watch against an in-process fake."""

import json
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sanad.cli import watch
from sanad.cli.__main__ import main
from sanad.v1 import registry_pb2, registry_pb2_grpc

ACTIVE = registry_pb2.CATALOG_SERVICE_STATUS_ACTIVE
RETIRED = registry_pb2.CATALOG_SERVICE_STATUS_RETIRED


def _center(number: int) -> registry_pb2.Center:
    center = registry_pb2.Center(
        id=f"C-{number}",
        name_en=f"Centre {number}",
        name_ar="مركز نزوى",
        wilayat_code="DA-NIZ",
        omani_staff=number + 2,
    )
    center.licence.status = registry_pb2.LICENCE_STATUS_ACTIVE
    return center


def _service(code: str, revision: int = 1, status: int = ACTIVE) -> registry_pb2.CatalogService:
    return registry_pb2.CatalogService(
        code=code,
        agency_code="ROP",
        name_en=f"{code} service",
        fee_baisa=5000,
        sla_hours=48,
        version=revision,
        status=status,
        revision=revision,
    )


class FakeRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """Two pages of centres and services, canned changes; remembers every request."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.deadlines: list[float] = []

    def ListCenters(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if request.page_token == "p2":
            return registry_pb2.ListCentersResponse(centers=[_center(3)])
        return registry_pb2.ListCentersResponse(
            centers=[_center(1), _center(2)], next_page_token="p2"
        )

    def SetCenterServices(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        center = _center(1)
        center.offered_service_codes.extend(request.offered_service_codes)
        center.blocked_service_codes.extend(request.blocked_service_codes)
        return registry_pb2.SetCenterServicesResponse(center=center)

    def ListCatalogServices(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if request.page_token == "p2":
            return registry_pb2.ListCatalogServicesResponse(services=[_service("MOL-PERMIT")])
        return registry_pb2.ListCatalogServicesResponse(
            services=[_service("ROP-VISA-RENEW", 3)], next_page_token="p2"
        )

    def UpdateCatalogService(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if "fee_baisa" in request.update_mask.paths and request.service.fee_baisa <= 0:
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid request")
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="service.fee_baisa", description="must be greater than zero"
            )
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
            context.abort_with_status(rpc_status.to_status(status))
        service = _service(request.service.code, 2)
        service.MergeFrom(request.service)
        return registry_pb2.UpdateCatalogServiceResponse(service=service)

    def RetireCatalogService(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        service = _service(request.code, 4, RETIRED)
        return registry_pb2.RetireCatalogServiceResponse(service=service)

    def WatchCatalog(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        self.deadlines.append(context.time_remaining())
        yield registry_pb2.WatchCatalogResponse(service=_service("ROP-VISA-RENEW", 5))
        yield registry_pb2.WatchCatalogResponse(synced=registry_pb2.WatchSynced(revision=5))
        yield registry_pb2.WatchCatalogResponse(service=_service("MOL-PERMIT", 6, RETIRED))
        yield registry_pb2.WatchCatalogResponse(service=_service("MOH-CARD", 7))
        while context.is_active():  # live: nothing more happens until the client leaves
            time.sleep(0.01)


@pytest.fixture
def fake() -> FakeRegistry:
    """The canned registry."""
    return FakeRegistry()


@pytest.fixture
def target(fake: FakeRegistry) -> Iterator[str]:
    """One in-process registry on port 0."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def run(target: str, *argv: str) -> int:
    """sanadctl with the registry at the fake, ignoring the caller's environment."""
    return main(["--registry", target, *argv], environ={})


def test_centers_list_sends_the_filters_and_prints_one_page_with_its_token(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("centers", "list", "--governorate", "DA", "--wilayat", "DA-NIZ", "--status", "active"),
        *("--service", "ROP-VISA-RENEW", "--query", "نزوى", "--page-size", "2"),
    )

    assert code == 0
    [request] = fake.requests
    assert (request.governorate_code, request.wilayat_code) == ("DA", "DA-NIZ")
    assert request.licence_status == registry_pb2.LICENCE_STATUS_ACTIVE
    assert (request.service_code, request.query, request.page_size) == ("ROP-VISA-RENEW", "نزوى", 2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "centers:"
    assert lines[1].split() == ["ID", "NAME_EN", "NAME_AR", "WILAYAT", "LICENCE", "OMANI_STAFF"]
    assert lines[2].split() == ["C-1", "Centre", "1", "مركز", "نزوى", "DA-NIZ", "active", "3"]
    assert lines[-1] == "next_page_token: p2"
    assert len(lines) == 5


def test_centers_list_resumes_from_a_page_token(target: str, fake: FakeRegistry) -> None:
    assert run(target, "centers", "list", "--page-token", "p2") == 0

    assert fake.requests[0].page_token == "p2"


def test_centers_list_all_follows_tokens_and_json_is_one_object_per_centre(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "--json", "centers", "list", "--all") == 0

    assert [request.page_token for request in fake.requests] == ["", "p2"]
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [result["id"] for result in results] == ["C-1", "C-2", "C-3"]
    assert results[0]["licence"]["status"] == "LICENCE_STATUS_ACTIVE"


def test_centers_list_json_without_all_ends_with_the_next_page_token(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "--json", "centers", "list") == 0

    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert results[-1] == {"next_page_token": "p2"}


def test_centers_services_replaces_offered_and_blocked(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("centers", "services", "C-1", "--offer", "ROP-VISA-RENEW", "--offer", "MOL-PERMIT"),
        *("--block", "MOH-CARD"),
    )

    assert code == 0
    [request] = fake.requests
    assert request.center_id == "C-1"
    assert list(request.offered_service_codes) == ["ROP-VISA-RENEW", "MOL-PERMIT"]
    assert list(request.blocked_service_codes) == ["MOH-CARD"]
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["services:", "ROP-VISA-RENEW,", "MOL-PERMIT"] in lines
    assert ["blocked:", "MOH-CARD"] in lines


def test_centers_services_sends_the_revision_read_only_when_given(
    target: str, fake: FakeRegistry
) -> None:
    assert run(target, "centers", "services", "C-1", "--offer", "S-A", "--revision", "12") == 0
    assert run(target, "centers", "services", "C-1", "--offer", "S-A") == 0

    checked, unchecked = fake.requests
    assert checked.HasField("expected_revision")
    assert checked.expected_revision == 12
    assert not unchecked.HasField("expected_revision")


def test_catalogue_list_filters_and_prints_fee_in_omr(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "catalogue", "list", "--agency", "ROP", "--status", "retired") == 0

    [request] = fake.requests
    assert (request.agency_code, request.status) == ("ROP", RETIRED)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [
        "CODE",
        "AGENCY",
        "NAME_EN",
        "FEE",
        "SLA_HOURS",
        "VERSION",
        "STATUS",
    ]
    row = [
        "ROP-VISA-RENEW",
        "ROP",
        "ROP-VISA-RENEW",
        "service",
        "5.000",
        "OMR",
        "48",
        "3",
        "active",
    ]
    assert lines[2].split() == row
    assert lines[-1] == "next_page_token: p2"


def test_catalogue_list_all_prints_every_page_and_no_token(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "catalogue", "list", "--all") == 0

    assert len(fake.requests) == 2
    out = capsys.readouterr().out
    assert "MOL-PERMIT" in out
    assert "next_page_token" not in out


def test_catalogue_update_masks_exactly_the_given_options(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("catalogue", "update", "ROP-VISA-RENEW", "--sla-hours", "72", "--name-ar", "تجديد"),
        *("--document", "passport", "--document", "photo"),
    )

    assert code == 0
    [request] = fake.requests
    assert list(request.update_mask.paths) == ["sla_hours", "name_ar", "required_documents"]
    service = request.service
    assert (service.code, service.sla_hours, service.name_ar) == ("ROP-VISA-RENEW", 72, "تجديد")
    assert list(service.required_documents) == ["passport", "photo"]
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["documents:", "passport,", "photo"] in lines


def test_catalogue_update_fee_only_sends_a_one_path_mask(target: str, fake: FakeRegistry) -> None:
    assert run(target, "catalogue", "update", "ROP-VISA-RENEW", "--fee-baisa", "7500") == 0

    assert list(fake.requests[0].update_mask.paths) == ["fee_baisa"]
    assert fake.requests[0].service.fee_baisa == 7500


def test_catalogue_update_no_documents_empties_the_list(target: str, fake: FakeRegistry) -> None:
    # `--document ""` was the only way to try, and an empty name is refused (operator helper).
    assert run(target, "catalogue", "update", "ROP-VISA-RENEW", "--no-documents") == 0

    assert list(fake.requests[0].update_mask.paths) == ["required_documents"]
    assert list(fake.requests[0].service.required_documents) == []


def test_catalogue_update_without_options_is_a_usage_error(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(target, "catalogue", "update", "ROP-VISA-RENEW")

    assert exit_info.value.code == 2
    assert "at least one of" in capsys.readouterr().err
    assert fake.requests == []


def test_catalogue_update_rejected_prints_the_violation_and_exits_1(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "catalogue", "update", "ROP-VISA-RENEW", "--fee-baisa", "0") == 1

    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: INVALID_ARGUMENT: invalid request",
        "  service.fee_baisa: must be greater than zero",
    ]


def test_catalogue_retire_sends_the_code_and_shows_retired(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "catalogue", "retire", "MOL-PERMIT") == 0

    assert fake.requests[0].code == "MOL-PERMIT"
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["status:", "retired"] in lines


def test_watch_prints_changes_and_the_synced_marker_and_stops_after_count(
    target: str, fake: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "--timeout", "5", "watch", "catalogue", "--since", "4", "--count", "2") == 0

    assert fake.requests[0].since_revision == 4
    # The deadline is the --timeout; gRPC encodes it on the wire rounded up, so the server may see a
    # few milliseconds more than 5 s. What matters is that a counted watch is bounded at all.
    assert 4 < fake.deadlines[0] < 6
    assert capsys.readouterr().out.splitlines() == [
        "5  ROP-VISA-RENEW  5  active  ROP-VISA-RENEW service",
        "synced at revision 5",
        "6  MOL-PERMIT  6  retired  MOL-PERMIT service",
    ]


def test_watch_json_prints_one_object_per_event(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "--json", "watch", "catalogue", "--count", "1") == 0

    [result] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert result["service"]["code"] == "ROP-VISA-RENEW"


def test_watch_without_count_has_no_deadline_and_ctrl_c_exits_0(
    target: str,
    fake: FakeRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[Any] = []

    def interrupt_at_the_live_change(printer: Any, response: Any) -> None:
        shown.append(response)
        if len(shown) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch, "_print_event", interrupt_at_the_live_change)

    assert run(target, "--timeout", "0.2", "watch", "catalogue") == 0

    assert fake.deadlines[0] > 3600
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err == ""


class RestartingRegistry(FakeRegistry):
    """A registry whose first catalogue stream ends (a drain: OK) or is lost (UNAVAILABLE)
    after two events, and whose next streams go on from the revision asked for."""

    def __init__(self, first_ends: str) -> None:
        super().__init__()
        self.first_ends = first_ends

    def WatchCatalog(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        if len(self.requests) == 1:
            yield registry_pb2.WatchCatalogResponse(service=_service("ROP-VISA-RENEW", 5))
            yield registry_pb2.WatchCatalogResponse(synced=registry_pb2.WatchSynced(revision=5))
            if self.first_ends == "unavailable":
                context.abort(grpc.StatusCode.UNAVAILABLE, "the server is stopping")
            return
        if len(self.requests) == 2:  # still restarting
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection refused")
        yield registry_pb2.WatchCatalogResponse(
            synced=registry_pb2.WatchSynced(revision=request.since_revision)
        )
        yield registry_pb2.WatchCatalogResponse(service=_service("MOL-PERMIT", 6))
        while context.is_active():
            time.sleep(0.01)


@pytest.mark.parametrize("first_ends", ["ok", "unavailable"])
def test_watch_goes_on_after_the_registry_restarts_from_the_last_revision_shown(
    first_ends: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It stopped at the first registry restart (a drain ends watch streams with OK), exit 0
    # and nothing said, and never showed what was published after (registry hunt).
    monkeypatch.setattr(watch, "RESUME_FIRST_S", 0.01)
    fake = RestartingRegistry(first_ends)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert run(f"127.0.0.1:{port}", "watch", "catalogue", "--count", "2") == 0
    finally:
        server.stop(None)

    assert [request.since_revision for request in fake.requests] == [0, 5, 5]
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "5  ROP-VISA-RENEW  5  active  ROP-VISA-RENEW service",
        "synced at revision 5",
        "synced at revision 5",
        "6  MOL-PERMIT  6  active  MOL-PERMIT service",
    ]
    why = {"ok": "the registry ended the stream (a restart or deploy)"}.get(
        first_ends, "the registry cannot be reached"
    )
    # One line for the outage, however many tries it took.
    assert captured.err.splitlines() == [f"warning: {why}; watching again after revision 5"]


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        # Before: no flag sent two empty lists, exit 0, and the centre offered nothing.
        ([], "give at least one of --offer, --block, or --clear"),
        (["--revision", "3"], "give at least one of --offer, --block, or --clear"),
        (["--clear", "--offer", "S-A"], "--clear offers and blocks nothing"),
        (["--clear", "--block", "S-A"], "--clear offers and blocks nothing"),
    ],
)
def test_centers_services_empties_the_lists_only_when_told_to(
    target: str,
    fake: FakeRegistry,
    flags: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(target, "centers", "services", "C-1", *flags)

    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err.splitlines()[-1]
    assert fake.requests == []


def test_centers_services_clear_sends_both_lists_empty(target: str, fake: FakeRegistry) -> None:
    assert run(target, "centers", "services", "C-1", "--clear") == 0

    [request] = fake.requests
    assert (list(request.offered_service_codes), list(request.blocked_service_codes)) == ([], [])
