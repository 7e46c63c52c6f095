"""The whole flow leaves no clear civil number in MongoDB, in any log line, or in any metric."""

import asyncio
import logging
import signal
import subprocess
import sys
import urllib.request

import prometheus_client
import pytest
from bson import json_util
from pymongo import AsyncMongoClient

from sanad.v1 import intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service

pytestmark = pytest.mark.integration

CIVIL_NUMBERS = ["73920581", "61458302", "90817263"]


async def test_no_clear_civil_number_survives_anywhere(
    stack: Stack, mongo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="sanad")
    center_id, service = await open_centre_with_service(stack)
    ids = []
    for index, civil in enumerate(CIVIL_NUMBERS):
        reply = await stack.intake.SubmitTransaction(
            intake_pb2.SubmitTransactionRequest(
                request_id=f"privacy-{index}",
                center_id=center_id,
                service_code=service,
                channel=COUNTER,
                fee_baisa=5000,
                beneficiary_civil_number=civil,
            ),
            timeout=10,
        )
        ids.append(reply.transaction_id)
    worker = _start_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:

        async def stored() -> bool:
            return await db.transactions.count_documents({"_id": {"$in": ids}}) == len(ids)

        await eventually(stored, within_s=30)
        for transaction_id in ids:
            await stack.intake.GetTransaction(
                intake_pb2.GetTransactionRequest(id=transaction_id), timeout=10
            )
        await asyncio.sleep(1)  # let rollups and metrics settle
        worker_metrics = _scrape(int(stack.env["SANAD_INGEST_METRICS_PORT"]))
        database_text = await _dump(db)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_output, _ = worker.communicate(timeout=30)
        await client.close()

    assert "audit_log" in database_text  # the audit trail was scanned too
    assert "SubmitTransaction" in database_text
    assert "== transactions" in database_text
    places = {
        "mongodb": database_text,
        "service logs": caplog.text + "\n".join(r.getMessage() for r in caplog.records),
        "worker log": worker_output.decode("utf-8", "replace"),
        "service metrics": prometheus_client.generate_latest().decode(),
        "worker metrics": worker_metrics,
    }
    assert len(places["worker log"]) > 0
    for place, text in places.items():
        for civil in CIVIL_NUMBERS:
            assert civil not in text, f"clear civil number found in {place}"


def _start_worker(stack: Stack) -> subprocess.Popen[bytes]:
    """The ingest worker at DEBUG level, its output captured for the scan."""
    return subprocess.Popen(
        [sys.executable, "-m", "workers.ingest"],
        env={**stack.env, "SANAD_LOG_LEVEL": "DEBUG"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def _dump(db: object) -> str:
    parts = []
    for name in await db.list_collection_names():  # type: ignore[attr-defined]
        parts.append(f"== {name}")
        async for document in db[name].find():  # type: ignore[index]
            parts.append(json_util.dumps(document))
    return "\n".join(parts)
