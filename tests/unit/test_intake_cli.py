"""sanadctl's tracking commands against an in-process fake IntakeService."""

import json
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from sanad.cli.__main__ import main
from sanad.v1 import intake_pb2, intake_pb2_grpc

STAMP = timestamp_pb2.Timestamp(seconds=1_735_689_600)  # 2025-01-01T00:00:00Z


def transaction(status: str, note: str = "") -> intake_pb2.Transaction:
    tx = intake_pb2.Transaction(
        id="T-1", status=f"TRANSACTION_STATUS_{status}", fee_baisa=5000, submit_time=STAMP
    )
    tx.history.add(status=f"TRANSACTION_STATUS_{status}", time=STAMP, note=note)
    return tx


class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def ListTransactions(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return intake_pb2.ListTransactionsResponse(
            transactions=[transaction("RECORDED")], next_page_token="next-1"
        )

    def WatchTransaction(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        for status, note in (
            ("RECORDED", ""),
            ("AWAITING_DOCUMENTS", "passport"),
            ("COMPLETED", ""),
        ):
            yield intake_pb2.WatchTransactionResponse(transaction=transaction(status, note))
            while request.id == "T-SLOW" and status == "AWAITING_DOCUMENTS":
                if not context.is_active():  # the documents never came within --within
                    return
                time.sleep(0.02)

    def UpdateTransactionStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if request.status == intake_pb2.Transaction(status="TRANSACTION_STATUS_COMPLETED").status:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "cannot go from COMPLETED")
        change = intake_pb2.StatusChange(
            status=request.status, time=STAMP, actor="rop", note=request.note
        )
        return intake_pb2.UpdateTransactionStatusResponse(change=change)

    def CancelTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        change = intake_pb2.StatusChange(
            status="TRANSACTION_STATUS_CANCELLED", time=STAMP, note=request.reason
        )
        return intake_pb2.CancelTransactionResponse(change=change)

    def RateTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return intake_pb2.RateTransactionResponse()


@pytest.fixture
def fake() -> FakeIntake:
    return FakeIntake()


@pytest.fixture
def target(fake: FakeIntake) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def run(target: str, *argv: str) -> int:
    return main(["--intake", target, *argv], environ={})


def test_list_sends_the_filters_and_prints_the_next_page_token(
    target: str, fake: FakeIntake, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        target,
        *("list", "--center", "C-1", "--status", "completed", "--after", "2025-01-01T00:00:00"),
        *("--page-size", "10"),
    )
    assert code == 0
    request = fake.requests[0]
    assert (request.center_id, request.page_size) == ("C-1", 10)
    assert request.status == intake_pb2.Transaction(status="TRANSACTION_STATUS_COMPLETED").status
    assert request.submitted_after.seconds == STAMP.seconds
    out = capsys.readouterr().out
    assert "T-1" in out
    assert "--page-token next-1" in out


def test_follow_prints_each_change_until_the_stream_ends(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "follow", "T-1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["recorded", "awaiting_documents", "completed"]
    assert lines[1].endswith("passport")


def test_follow_past_its_within_says_so_with_the_last_status_not_grpcs_words(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(target, "follow", "T-SLOW", "--within", "0.5") == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert err == "error: T-SLOW did not finish within 0.5s (last: awaiting_documents)\n"


def test_update_status_prints_the_accepted_change(
    target: str, fake: FakeIntake, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(target, "update-status", "T-1", "--status", "awaiting_agency", "--note", "MoL")
    assert code == 0
    assert "status: awaiting_agency" in capsys.readouterr().out
    assert (fake.requests[0].note, fake.requests[0].request_id) == ("MoL", "")


def test_status_changes_carry_the_request_id_given(target: str, fake: FakeIntake) -> None:
    update = ("update-status", "T-1", "--status", "in_progress", "--request-id", "mol-7")
    assert run(target, *update) == 0
    assert run(target, "cancel", "T-1", "--request-id", "mol-8") == 0
    assert [r.request_id for r in fake.requests] == ["mol-7", "mol-8"]


def test_a_refused_update_exits_1(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(target, "update-status", "T-1", "--status", "completed") == 1
    assert "FAILED_PRECONDITION" in capsys.readouterr().err


def test_cancel_and_rate(target: str, fake: FakeIntake, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(target, "--json", "cancel", "T-1", "--reason", "withdrawn") == 0
    assert json.loads(capsys.readouterr().out)["change"]["note"] == "withdrawn"
    assert run(target, "rate", "T-1", "--rating", "5") == 0
    assert fake.requests[-1].rating == 5


def test_a_rating_outside_one_to_five_is_bad_usage(target: str) -> None:
    with pytest.raises(SystemExit) as caught:
        run(target, "rate", "T-1", "--rating", "6")
    assert caught.value.code == 2
