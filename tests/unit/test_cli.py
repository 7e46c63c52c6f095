"""sanadctl against an in-process fake of the registry, intake and metrics services."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from sanad.cli.__main__ import main
from sanad.cli.output import money
from sanad.v1 import (
    intake_pb2,
    intake_pb2_grpc,
    metrics_pb2,
    metrics_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

STAMP = timestamp_pb2.Timestamp(seconds=1_735_689_600)  # 2025-01-01T00:00:00Z


def _abort_invalid(context: grpc.ServicerContext, field: str, description: str) -> None:
    """Fail the call the way the real services do: INVALID_ARGUMENT with BadRequest."""
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid request")
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    context.abort_with_status(rpc_status.to_status(status))


class FakeServices(
    registry_pb2_grpc.RegistryServiceServicer,
    intake_pb2_grpc.IntakeServiceServicer,
    metrics_pb2_grpc.MetricsServiceServicer,
):
    """Canned answers; remembers every request and its metadata."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []
        self.polls = 0

    def _seen(self, request: Any, context: grpc.ServicerContext) -> None:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))

    def _center(self, center: registry_pb2.Center | None = None) -> registry_pb2.Center:
        result = registry_pb2.Center(id="C-1", revision=7)
        result.MergeFrom(center or registry_pb2.Center(name_ar="مركز أبراج الشرق"))
        result.licence.status = registry_pb2.LICENCE_STATUS_APPLIED
        return result

    def RegisterCenter(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        return registry_pb2.RegisterCenterResponse(center=self._center(request.center))

    def GetCenter(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        if request.id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "centre missing not found")
        center = self._center()
        center.licence.number = "L-2024-001"
        center.licence.status = registry_pb2.LICENCE_STATUS_ACTIVE
        center.licence.expires_at.CopyFrom(STAMP)
        center.licence.history.add(
            action=registry_pb2.LICENCE_ACTION_ACTIVATE,
            from_status=registry_pb2.LICENCE_STATUS_INITIALLY_APPROVED,
            to_status=registry_pb2.LICENCE_STATUS_ACTIVE,
            actor="ministry",
            reason="inspection passed",
            time=STAMP,
        )
        return registry_pb2.GetCenterResponse(center=center)

    def TransitionLicence(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        return registry_pb2.TransitionLicenceResponse(center=self._center())

    def AddCatalogService(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        if request.service.fee_baisa <= 0:
            _abort_invalid(context, "service.fee_baisa", "must be greater than zero")
        service = registry_pb2.CatalogService(version=1, status="CATALOG_SERVICE_STATUS_ACTIVE")
        service.MergeFrom(request.service)
        return registry_pb2.AddCatalogServiceResponse(service=service)

    def GetCatalogService(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        time.sleep(0.5 if request.code == "SLOW" else 0)
        service = registry_pb2.CatalogService(code=request.code, fee_baisa=5000, sla_hours=48)
        return registry_pb2.GetCatalogServiceResponse(service=service)

    def SubmitTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        time.sleep(0.5 if request.center_id == "SLOW" else 0)
        if not request.beneficiary_civil_number.isdigit():
            _abort_invalid(context, "beneficiary_civil_number", "must be digits only")
        return intake_pb2.SubmitTransactionResponse(transaction_id="T-1", submit_time=STAMP)

    def GetTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        self.polls += 1
        if request.id == "T-late" and self.polls <= 2:
            context.abort(grpc.StatusCode.NOT_FOUND, "not stored yet")
        recorded = request.id == "T-late" and self.polls > 3
        tx = intake_pb2.Transaction(
            id=request.id,
            center_id="C-1",
            service_code="ROP-VISA-RENEW",
            agency_code="ROP",
            service_version=1,
            channel="CHANNEL_COUNTER",
            fee_baisa=5000,
            beneficiary_masked="*****123",
            status="TRANSACTION_STATUS_RECORDED" if recorded else "TRANSACTION_STATUS_SUBMITTED",
            submit_time=STAMP,
            sla_elapsed_seconds=120,
            fee_refund_due=False,
        )
        tx.history.add(status="TRANSACTION_STATUS_SUBMITTED", time=STAMP, actor="intake")
        return intake_pb2.GetTransactionResponse(transaction=tx)

    def GetCenterStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen(request, context)
        stats = metrics_pb2.Stats(submitted=3, recorded=3, completed=2, fees_baisa=12_500)
        return metrics_pb2.GetCenterStatsResponse(center_id=request.center_id, stats=stats)


@pytest.fixture
def health_servicer() -> health.HealthServicer:
    """A standard health servicer that starts SERVING."""
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return servicer


@pytest.fixture
def fake() -> FakeServices:
    """The canned services."""
    return FakeServices()


@pytest.fixture
def target(fake: FakeServices, health_servicer: health.HealthServicer) -> Iterator[str]:
    """One in-process server on port 0 serving all three services and health."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(fake, server)
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(fake, server)
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(fake, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def run(target: str, *argv: str) -> int:
    """sanadctl with every service at the fake, ignoring the caller's environment."""
    prefix = ["--registry", target, "--intake", target, "--metrics", target]
    return main([*prefix, *argv], environ={})


def unused_target() -> str:
    """An address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_register_sends_the_centre_and_prints_its_id_first(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("centers", "register", "--licence-number", "L-2024-001", "--name-ar", "مركز نزوى"),
        *("--name-en", "Nizwa Centre", "--owner", "Al Noor LLC", "--governorate", "DA"),
        *("--wilayat", "DA-NIZ", "--omani-staff", "3", "--total-staff", "4"),
        *("--service", "ROP-VISA-RENEW", "--service", "MOL-PERMIT", "--phone", "+96824000000"),
    )

    assert code == 0
    center = fake.requests[0].center
    assert center.licence.number == "L-2024-001"
    assert (center.name_ar, center.wilayat_code, center.omani_staff) == ("مركز نزوى", "DA-NIZ", 3)
    assert list(center.offered_service_codes) == ["ROP-VISA-RENEW", "MOL-PERMIT"]
    assert center.contact.phone == "+96824000000"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id: C-1"
    assert any(line.split() == ["name_ar:", "مركز", "نزوى"] for line in lines)


def test_register_json_output_is_one_object_with_proto_field_names(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("--json", "centers", "register", "--licence-number", "L-1", "--name-ar", "مركز"),
        *("--name-en", "C", "--owner", "O", "--governorate", "DA", "--wilayat", "DA-NIZ"),
        *("--omani-staff", "1", "--total-staff", "1"),
    )

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    center = json.loads(lines[0])["center"]
    assert center["id"] == "C-1"
    assert center["name_ar"] == "مركز"
    assert center["licence"]["status"] == "LICENCE_STATUS_APPLIED"
    assert "مركز" in lines[0]


def test_get_center_shows_licence_status_expiry_and_history(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "centers", "get", "C-1") == 0

    out = capsys.readouterr().out
    assert "licence_status: active" in out
    assert "2025-01-01T00:00:00Z" in out
    assert "activate  initially_approved -> active  ministry  inspection passed" in out


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("approve", registry_pb2.LICENCE_ACTION_APPROVE),
        ("suspend", registry_pb2.LICENCE_ACTION_SUSPEND),
        ("cancel", registry_pb2.LICENCE_ACTION_CANCEL),
    ],
)
def test_licence_action_becomes_the_transition_request(
    target: str, fake: FakeServices, action: str, expected: int
) -> None:
    assert run(target, "licence", action, "C-1", "--reason", "annual inspection") == 0

    request = fake.requests[0]
    assert (request.center_id, request.action, request.reason) == (
        "C-1",
        expected,
        "annual inspection",
    )


def test_catalogue_add_sends_fee_sla_and_documents(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("catalogue", "add", "--code", "ROP-VISA-RENEW", "--agency", "ROP"),
        *("--name-ar", "تجديد تأشيرة", "--name-en", "Visa renewal", "--fee-baisa", "5000"),
        *("--sla-hours", "48", "--document", "passport", "--document", "photo"),
    )

    assert code == 0
    service = fake.requests[0].service
    assert (service.code, service.agency_code, service.fee_baisa, service.sla_hours) == (
        "ROP-VISA-RENEW",
        "ROP",
        5000,
        48,
    )
    assert list(service.required_documents) == ["passport", "photo"]
    out = capsys.readouterr().out
    assert "5,000 baisa (5.000 OMR)" in out
    assert "status:    active" in out


def test_catalogue_get_asks_for_the_code(target: str, fake: FakeServices) -> None:
    assert run(target, "catalogue", "get", "ROP-VISA-RENEW") == 0

    assert fake.requests[0].code == "ROP-VISA-RENEW"


def test_submit_prints_the_transaction_id(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("submit", "--center", "C-1", "--service", "ROP-VISA-RENEW", "--fee-baisa", "5000"),
        *("--civil-number", "12345678", "--channel", "mobile", "--request-id", "req-1"),
    )

    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == "transaction_id: T-1"
    request = fake.requests[0]
    assert request.request_id == "req-1"
    assert request.channel == intake_pb2.Transaction(channel="CHANNEL_MOBILE").channel
    assert (request.fee_baisa, request.beneficiary_civil_number) == (5000, "12345678")


def test_submit_json_carries_the_request_id_a_retry_must_reuse(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    # The table printed the id sanadctl made; --json printed only the response, so a script
    # could not retry the submission under the same request id.
    submit = ("submit", "--center", "C-1", "--service", "S", "--fee-baisa", "1")
    assert run(target, "--json", *submit, "--civil-number", "12345678") == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "transaction_id": "T-1",
        "submit_time": "2025-01-01T00:00:00Z",
        "request_id": fake.requests[0].request_id,
    }
    assert len(printed["request_id"]) == 32


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_a_submit_whose_answer_is_lost_names_the_request_id_a_retry_must_reuse(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str], output: list[str]
) -> None:
    # The answer is what a lost answer lacks: the id sanadctl made was printed only with it,
    # and the error named the call's x-request-id, another id, so a retry stored it twice.
    submit = ("submit", "--center", "SLOW", "--service", "S", "--fee-baisa", "1")
    argv = [*output, "--timeout", "0.1", *submit, "--civil-number", "12345678"]
    assert run(target, *argv) == 1

    made = fake.requests[0].request_id
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: DEADLINE_EXCEEDED: ")
    assert err[1:] == [
        f"error: intake may have stored it: send it again with --request-id {made}, which"
        " stores it once"
    ]


def test_a_submit_refused_for_its_fields_names_no_request_id_to_reuse(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    submit = ("submit", "--center", "C-1", "--service", "S", "--fee-baisa", "1")
    assert run(target, *submit, "--civil-number", "12ab") == 1

    assert "--request-id" not in capsys.readouterr().err


def test_every_call_carries_the_identity_and_a_fresh_request_id_header(
    target: str, fake: FakeServices
) -> None:
    submit = ("submit", "--center", "C-1", "--service", "S", "--fee-baisa", "1")
    assert run(target, "--identity", "ministry:ROP", *submit, "--civil-number", "1") == 0
    assert run(target, "--identity", "ministry:ROP", *submit, "--civil-number", "1") == 0

    first, second = fake.metadata
    assert first["x-sanad-identity"] == "ministry:ROP"
    assert len(first["x-request-id"]) == 32
    assert first["x-request-id"] != second["x-request-id"]
    assert fake.requests[0].request_id != fake.requests[1].request_id
    assert fake.requests[0].channel == intake_pb2.Transaction(channel="CHANNEL_COUNTER").channel


def test_show_prints_fee_in_baisa_and_omr_and_the_masked_beneficiary(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "show", "T-1") == 0

    out = capsys.readouterr().out
    assert "fee:            5,000 baisa (5.000 OMR)" in out
    assert "beneficiary:    *****123" in out
    assert "status:         submitted" in out
    assert "sla_seconds:    120" in out
    assert "refund_due:     no" in out
    assert "2025-01-01T00:00:00Z  submitted  intake" in out


def test_show_json_prints_the_transaction_with_its_defaults(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "--json", "show", "T-1") == 0

    transaction = json.loads(capsys.readouterr().out)["transaction"]
    assert transaction["fee_baisa"] == "5000"
    assert transaction["status"] == "TRANSACTION_STATUS_SUBMITTED"
    assert transaction["fee_refund_due"] is False


def test_invalid_argument_prints_one_line_and_each_violation_and_exits_1(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("submit", "--center", "C-1", "--service", "S", "--fee-baisa", "1"),
        *("--civil-number", "12ab"),
    )

    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: INVALID_ARGUMENT: invalid request",
        "  beneficiary_civil_number: must be digits only",
    ]


def test_not_found_prints_one_line_and_exits_1(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "centers", "get", "missing") == 1

    assert capsys.readouterr().err.splitlines() == ["error: NOT_FOUND: centre missing not found"]


def test_an_unreachable_service_is_one_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--intake", unused_target(), "--timeout", "2", "show", "T-1"], environ={})

    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: UNAVAILABLE: ")
    assert "request id" not in err[0]  # no server answered, so none returned one


def test_an_unreadable_credential_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--ca", "/nonexistent/ca.pem", "show", "T-1"], environ={})

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --ca (SANAD_CA_FILE): cannot read /nonexistent/ca.pem: No such file or directory"
    ]


def test_a_ca_file_without_a_certificate_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An empty CA would have left gRPC trusting the system roots, the dev CA unpinned.
    for content in (b"", b"garbage"):
        ca = tmp_path / "ca.pem"
        ca.write_bytes(content)
        code = main(["--ca", str(ca), "show", "T-1"], environ={})

        assert code == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1
        assert err[0].startswith(f"error: --ca (SANAD_CA_FILE): no PEM certificate in {ca}")


def test_a_tls_file_beginning_with_a_byte_order_mark_is_one_line_and_exit_2(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Python's OpenSSL read past it; gRPC's failed every handshake, with a flood of its own
    # log lines (CLI helper).
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"\xef\xbb\xbf" + (pki / "ca.pem").read_bytes())
    code = main(["--ca", str(ca), "show", "T-1"], environ={})

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --ca (SANAD_CA_FILE): {ca} begins with a byte order mark, which gRPC cannot"
        " read: save it without one"
    ]


def test_grpcs_own_log_lines_are_off_unless_the_operator_asks_for_them() -> None:
    # sanadctl prints one line for every failure; gRPC's went before it (CLI helper).
    for environ, expected in (({}, "NONE"), ({"GRPC_VERBOSITY": "DEBUG"}, "DEBUG")):
        shown = subprocess.run(
            [sys.executable, "-c", "import os, sanad.cli; print(os.environ['GRPC_VERBOSITY'])"],
            env={k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"} | environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert shown.stdout.strip() == expected


def test_a_certificate_and_key_that_are_no_pair_are_one_line_and_exit_2(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, cert, key = pki / "ca.pem", pki / "registry.pem", pki / "intake.key"
    code = main(
        ["--ca", str(ca), "--cert", str(cert), "--key", str(key), "show", "T-1"], environ={}
    )

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --cert (SANAD_CERT_FILE) and --key (SANAD_KEY_FILE): not a PEM certificate and"
        " the unencrypted private key that goes with it (KEY_VALUES_MISMATCH)"
    ]


def test_a_cas_own_certificate_as_the_client_certificate_is_one_line_and_exit_2(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The pair passed its check, and every call then failed UNAVAILABLE at gRPC's handshake.
    ca, key = pki / "ca.pem", pki / "ca.key"
    flags = ["--intake", unused_target(), "--ca", str(ca), "--cert", str(ca), "--key", str(key)]
    code = main([*flags, "show", "T-1"], environ={})

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --cert (SANAD_CERT_FILE): {ca} is a CA certificate (basicConstraints CA:TRUE),"
        " not one a client or service presents: give the certificate the CA issued to it, with"
        " its key; the CA's own goes in --ca (SANAD_CA_FILE)"
    ]


CERT_WITHOUT_KEY = (
    "error: --cert (SANAD_CERT_FILE) is set without --key (SANAD_KEY_FILE), its private key"
)
KEY_WITHOUT_CERT = (
    "error: --key (SANAD_KEY_FILE) is set without --cert (SANAD_CERT_FILE), its certificate"
)
NO_CA = "error: --cert and --key are set without --ca (SANAD_CA_FILE): mutual TLS needs the CA"


@pytest.mark.parametrize("command", [["centers", "list"], ["seed"]])
def test_a_certificate_without_its_key_is_one_line_and_exit_2_not_an_abort(
    pki: Path, command: list[str]
) -> None:
    # gRPC's C core aborts the whole process (exit 134) on such credentials, hence a subprocess.
    flags = ["--registry", unused_target(), "--ca", str(pki / "ca.pem")]
    environ = {name: value for name, value in os.environ.items() if not name.startswith("SANAD_")}
    result = subprocess.run(
        [sys.executable, "-m", "sanad.cli", *flags, "--cert", str(pki / "admin.pem"), *command],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr.splitlines()) == (2, [CERT_WITHOUT_KEY])


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        pytest.param(
            ["--ca", "/nowhere/ca.pem", "--key", "/nowhere/admin.key"],
            {},
            KEY_WITHOUT_CERT,
            id="key-flag-without-cert",
        ),
        pytest.param(
            [],
            {"SANAD_CA_FILE": "/nowhere/ca.pem", "SANAD_KEY_FILE": "/k"},
            KEY_WITHOUT_CERT,
            id="key-env-without-cert",
        ),
        pytest.param(
            [],
            {"SANAD_CA_FILE": "/nowhere/ca.pem", "SANAD_CERT_FILE": "/c"},
            CERT_WITHOUT_KEY,
            id="cert-env-without-key",
        ),
        pytest.param(
            ["--cert", "/nowhere/admin.pem", "--key", "/nowhere/admin.key"],
            {},
            NO_CA,
            id="flags-without-ca",
        ),
        pytest.param(
            [], {"SANAD_CERT_FILE": "/c", "SANAD_KEY_FILE": "/k"}, NO_CA, id="env-without-ca"
        ),
    ],
)
def test_tls_files_that_do_not_go_together_are_one_line_and_exit_2_before_any_call(
    flags: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--registry", unused_target(), "--timeout", "2", *flags, "centers", "list"]

    assert main(argv, environ=environ) == 2
    assert capsys.readouterr().err.splitlines() == [message]


def test_a_slow_call_ends_at_the_deadline(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(target, "--timeout", "0.1", "catalogue", "get", "SLOW") == 1

    assert capsys.readouterr().err.startswith("error: DEADLINE_EXCEEDED: ")


def test_wait_succeeds_after_the_transaction_is_recorded(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "wait", "T-late", "--status", "recorded", "--within", "5") == 0

    assert fake.polls == 4
    assert "status:         recorded" in capsys.readouterr().out


def test_wait_accepts_a_status_already_passed_through(target: str) -> None:
    assert run(target, "wait", "T-1", "--status", "submitted", "--within", "1") == 0


def test_wait_fails_when_the_status_is_not_reached_in_time(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "wait", "T-never", "--within", "0.5") == 1

    assert capsys.readouterr().err.splitlines() == [
        "error: T-never did not reach recorded within 0.5s (last: submitted)"
    ]


def test_stats_prints_counters_and_fees_in_omr(
    target: str, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "stats", "C-1") == 0

    assert fake.requests[0].center_id == "C-1"
    out = capsys.readouterr().out
    assert "completed:               2" in out
    assert "fees:                    12,500 baisa (12.500 OMR)" in out


def test_health_reports_serving_for_every_service(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "health") == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["registry", target, "SERVING"],
        ["intake", target, "SERVING"],
        ["metrics", target, "SERVING"],
    ]


def test_health_fails_when_a_target_is_down_or_not_serving(
    target: str, health_servicer: health.HealthServicer, capsys: pytest.CaptureFixture[str]
) -> None:
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    down = unused_target()

    assert run(target, "--json", "health", "--target", target, "--target", down) == 1

    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [result["status"] for result in results] == ["NOT_SERVING", "UNAVAILABLE"]


def test_bad_usage_exits_with_argparse_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["licence", "explode", "C-1"], environ={})

    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_licence_action_without_a_reason_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["licence", "suspend", "C-1"], environ={})

    assert exit_info.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_targets_and_identity_default_from_the_environment(target: str, fake: FakeServices) -> None:
    environ = {"SANAD_METRICS_TARGET": target, "SANAD_IDENTITY": "operator:dakhiliyah"}

    assert main(["stats", "C-1"], environ=environ) == 0

    assert fake.metadata[0]["x-sanad-identity"] == "operator:dakhiliyah"


@pytest.mark.parametrize(
    ("baisa", "shown"),
    [
        (5000, "5.000 OMR"),
        (1, "0.001 OMR"),
        (12_345, "12.345 OMR"),
        (-250, "-0.250 OMR"),
        (270_000_500, "270,000.500 OMR"),
        (-1_234_567_890, "-1,234,567.890 OMR"),
    ],
)
def test_money_is_shown_exactly_with_three_decimals(baisa: int, shown: str) -> None:
    assert money(baisa) == shown


def test_health_checks_the_workers_make_run_names_too(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stopped workers left every service SERVING while nothing was stored (operator helper).
    down = unused_target()
    workers = f"ingest-1={target},batch={down}"
    prefix = ["--registry", target, "--intake", target, "--metrics", target]
    assert main([*prefix, "health"], environ={"SANAD_WORKER_TARGETS": workers}) == 1

    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[3:] == [
        ["ingest-1", target, "SERVING"],
        ["batch", down, "UNAVAILABLE", "(nothing", "listens", "there)"],
    ]
    assert (
        main([*prefix, "health", "--target", target], environ={"SANAD_WORKER_TARGETS": workers})
        == 0
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["health", "--json"], "--json"), (["centers", "get", "C-1", "--timeout=5"], "--timeout")],
)
def test_an_option_of_sanadctl_itself_after_the_command_says_to_put_it_before(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse said only "unrecognized arguments: --json".
    with pytest.raises(SystemExit) as usage:
        main(argv, environ={})

    assert usage.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"sanadctl: error: {flag} is an option of sanadctl itself: put it before the command"
        f" (sanadctl {flag} ... {argv[0]} ...)"
    )


def test_an_option_no_one_has_is_still_unrecognized(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["health", "--bogus"], environ={})

    assert usage.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "sanadctl: error: unrecognized arguments: --bogus"
    )
