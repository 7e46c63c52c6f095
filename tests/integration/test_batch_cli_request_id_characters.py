"""A request id is its client's opaque key: `sanadctl batch submit` sends it as the file holds
it, less the spaces and tabs around it that a CSV's layout puts there, and the batch worker
judges it by the rule intake holds a gRPC request id to. A U+2028 or U+0085 at its end is no
layout: the row is refused on request_id, as the same id sent over gRPC is, never stored under
another id."""

import asyncio
import csv
import json
import signal
import sys
from pathlib import Path

import grpc
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sanad.rpc.status import field_violations
from tests.integration.conftest import Stack, open_centre_with_service, submit_request
from tests.integration.workers_support import serving_batch_worker

pytestmark = pytest.mark.integration

ODD_ENDS = ["r-1\u2028", "\u0085r-2", "r-3\u00a0"]


async def sanadctl(stack: Stack, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanad.cli", "--json", *args,
        env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


def write_rows(path: Path, service: str, request_ids: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "service_code", "fee_baisa", "civil_number"])
        for n, request_id in enumerate(request_ids):
            writer.writerow([request_id, service, "5000", f"9081726{n}"])
    return path


def read_refused(path: Path) -> list[dict[str, str]]:
    """The refused rows, read as CSV reads them: str.splitlines would cut a row at its U+2028."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def grpc_violations(stack: Stack, request: object) -> list[tuple[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.intake.SubmitTransaction(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(raised.value)


async def test_a_request_id_ending_in_a_unicode_space_is_refused_by_batch_as_by_grpc(
    stack: Stack, db: AsyncDatabase, tmp_path: Path
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / "rows.csv", service, [*ODD_ENDS, " r-4\t"])
    worker = await serving_batch_worker(stack)
    try:
        code, out, err = await sanadctl(
            stack, "batch", "submit", str(path), "--center", center_id, "--batch-id", "odd-ends"
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    assert code == 1, err
    summary = json.loads(out)
    assert (summary["accepted"], summary["rejected"]) == (1, 3)
    # Only the row whose spaces were the CSV's layout is stored, under its id without them.
    stored = await db.transactions.find({"center_id": center_id}).to_list()
    assert [doc["request_id"] for doc in stored] == ["r-4"]
    refused = read_refused(Path(summary["rejected_file"]))
    assert [row["request_id"] for row in refused] == ODD_ENDS
    for row, request_id in zip(refused, ODD_ENDS, strict=True):
        [(field, description)] = await grpc_violations(
            stack, submit_request(center_id, service, request_id)
        )
        assert row["reason"] == f"{field}: {description}"
