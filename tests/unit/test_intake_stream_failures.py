"""SubmitTransactions: one item's failure that no domain rule raised is that item's answer alone
(INTERNAL, or UNAVAILABLE when it may pass); the stream and the other items' answers go on."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import BulkWriteError, OperationFailure

from sanad.deadline import Deadline
from sanad.domain.submissions import Submission, request_key
from sanad.security.identity import DEV_ADMIN
from sanad.telemetry.logs import request_id_var
from services.intake.servicer import item_to_proto
from services.intake.streaming import ItemResult, StreamLimits, submit_stream
from tests.unit.test_intake_submit import CIVIL, CountingRequests, Setup, setup, submission

CALLER = "tester"


class RefusedReads(CountingRequests):
    """Reads of request records refused for good (the role lacks `find`), slowly enough that
    the items after the one reading are claimed and confirmed meanwhile."""

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        await asyncio.sleep(0.05)
        raise OperationFailure("not authorized on sanad to execute command { find: ... }", 13)


class OneBadClaim(CountingRequests):
    """The coalesced claims' insert_many refuses one document with a write error of its own."""

    def __init__(self, bad_key: str, code: int) -> None:
        super().__init__()
        self.bad_key, self.code = bad_key, code

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        await asyncio.sleep(0.01)
        errors = []
        for index, doc in enumerate(documents):
            if doc["_id"] == self.bad_key:
                errors.append({"index": index, "code": self.code, "errmsg": "refused", "op": doc})
            else:
                self.docs[doc["_id"]] = dict(doc)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})


def with_requests(requests: CountingRequests) -> Setup:
    s = setup()
    s.intake.store.requests = requests  # type: ignore[attr-defined]
    s.intake.store.claims.collection = requests  # type: ignore[attr-defined]
    s.requests = requests
    return s


async def run(s: Setup, submissions: list[Submission]) -> list[ItemResult]:
    async def items() -> AsyncIterator[Submission]:
        for item in submissions:
            yield item
            await asyncio.sleep(0.005)  # items arrive one after another

    stream = submit_stream(
        s.intake,
        items(),
        caller=CALLER,
        identity=DEV_ADMIN,
        deadline=Deadline(5.0),
        limits=StreamLimits(256, 1000),
        charge=lambda: None,
    )
    return [result async for result in stream]


async def test_an_item_whose_replay_read_fails_for_good_is_answered_internal_alone() -> None:
    s = with_requests(RefusedReads())
    # Item 0 is refused by its fee, so intake reads whether it was accepted before: that read
    # fails with an error no domain rule raised.
    submissions = [submission(request_id="r-0", fee_baisa=4999)]
    submissions += [submission(request_id=f"r-{n}") for n in range(1, 10)]
    results = await run(s, submissions)
    assert [r.index for r in results] == list(range(10))
    assert item_to_proto(results[0]).error_code == "INTERNAL"
    assert all(r.accepted is not None for r in results[1:])
    # Every item the broker confirmed was answered.
    assert len(s.publisher.sent) == 9


async def test_an_item_whose_claim_fails_for_good_is_answered_internal_alone() -> None:
    s = with_requests(OneBadClaim(request_key(CALLER, "r-5"), code=13))
    results = await run(s, [submission(request_id=f"r-{n}") for n in range(10)])
    assert [r.index for r in results] == list(range(10))
    assert [r.accepted is None for r in results] == [n == 5 for n in range(10)]
    failed = item_to_proto(results[5])
    assert failed.error_code == "INTERNAL"
    assert failed.request_id == "r-5"
    assert len(s.publisher.sent) == 9


async def test_a_claim_refused_while_the_primary_steps_down_is_unavailable() -> None:
    # 11602 InterruptedDueToReplStateChange, per document: it passes, so the item may be resent.
    s = with_requests(OneBadClaim(request_key(CALLER, "r-2"), code=11602))
    results = await run(s, [submission(request_id=f"r-{n}") for n in range(4)])
    assert [r.accepted is None for r in results] == [False, False, True, False]
    assert item_to_proto(results[2]).error_code == "UNAVAILABLE"


async def test_an_items_internal_failure_is_logged_once_with_its_request_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = with_requests(OneBadClaim(request_key(CALLER, "r-1"), code=13))
    token = request_id_var.set("call-42")
    caplog.set_level(logging.INFO)
    try:
        results = await run(s, [submission(request_id=f"r-{n}") for n in range(3)])
    finally:
        request_id_var.reset(token)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1
    (line,) = lines
    assert getattr(line, "item_request_id", None) == "r-1"
    assert getattr(line, "item_index", None) == 1
    assert CIVIL not in caplog.text
    # The client reads the call's request id to quote, never the error itself.
    assert results[1].error is not None
    assert "call-42" in results[1].error.message
    assert "refused" not in results[1].error.message
