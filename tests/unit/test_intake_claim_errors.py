"""The coalesced claims give each caller what insert_one would have raised: its own write error
with its code, details and labels, so a failure that passes is still seen to pass."""

import asyncio
from typing import Any

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError, WTimeoutError

from sanad.coalesce import InsertCoalescer
from sanad.errors import Unavailable
from services.intake.failures import transient
from tests.unit.test_intake_claims import NOW, FakeRequests, store_with


class Refusing:
    """insert_many answers one BulkWriteError, as the server reported it."""

    def __init__(self, details: dict[str, Any]) -> None:
        self.details = details

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        await asyncio.sleep(0)
        raise BulkWriteError(self.details)


async def insert_all(coalescer: InsertCoalescer, count: int) -> list[BaseException | None]:
    return await asyncio.gather(
        *(coalescer.insert({"_id": f"k{n}"}) for n in range(count)), return_exceptions=True
    )


async def test_each_document_gets_its_own_write_error_with_its_code_and_details() -> None:
    interrupted = {
        "index": 1,
        "code": 11602,
        "errmsg": "operation was interrupted",
        "errInfo": {"why": "step-down"},
        "op": {"_id": "k1", "fingerprint": "f"},
    }
    duplicate = {"index": 2, "code": 11000, "errmsg": "duplicate key", "op": {"_id": "k2"}}
    refusing = Refusing({"writeErrors": [interrupted, duplicate], "writeConcernErrors": []})
    results = await insert_all(InsertCoalescer(refusing), 3)  # type: ignore[arg-type]
    ok, stepped_down, taken = results
    assert ok is None
    assert isinstance(taken, DuplicateKeyError)
    assert isinstance(stepped_down, WriteError)
    assert not isinstance(stepped_down, DuplicateKeyError)
    assert stepped_down.code == 11602
    assert stepped_down.details is not None
    assert stepped_down.details["errInfo"] == {"why": "step-down"}
    assert "op" not in stepped_down.details  # as insert_one's: the document is not repeated
    assert transient(stepped_down)


async def test_a_write_concern_error_keeps_its_labels_and_its_timeout() -> None:
    concern = {
        "code": 64,
        "errmsg": "waiting for replication timed out",
        "errInfo": {"wtimeout": True},
        "errorLabels": ["RetryableWriteError"],
    }
    refusing = Refusing({"writeErrors": [], "writeConcernErrors": [concern]})
    (error,) = await insert_all(InsertCoalescer(refusing), 1)  # type: ignore[arg-type]
    assert isinstance(error, WTimeoutError)
    assert error.has_error_label("RetryableWriteError")
    assert error.timeout


class InterruptedClaims(FakeRequests):
    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        errors = [
            {"index": n, "code": 11602, "errmsg": "interrupted"} for n in range(len(documents))
        ]
        raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})


async def test_a_claim_refused_by_a_primary_stepping_down_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        await store_with(InterruptedClaims()).claim_request("key", "T1", "fp", NOW, 2.0)
