"""`sanadctl batch submit` with CSV and NDJSON files: a summary, and rejected rows in a file."""

import asyncio
import csv
import json
import signal
import sys
import time
from pathlib import Path

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import AT_LEAST_ONCE, BATCH, Topology
from sanad.cli.batch_send import Cut, send
from sanad.devstack.mongo_server import free_port
from sanad.v1 import events_pb2
from tests.integration.conftest import (
    Stack,
    eventually,
    open_centre_with_service,
    submit_request,
)
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl
from tests.integration.workers_support import start_batch_worker

pytestmark = pytest.mark.integration


async def sanadctl(
    stack: Stack, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanad.cli", "--json", *args,
        env=env or stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


def rows(service: str) -> list[dict[str, object]]:
    good = [
        {"request_id": f"r-{n}", "service_code": service, "channel": "counter",
         "fee_baisa": 5000, "civil_number": f"9081726{n}"}
        for n in range(8)
    ]  # fmt: skip
    bad_fee = {"request_id": "bad-fee", "service_code": service, "channel": "counter",
               "fee_baisa": 1, "civil_number": "12345678"}  # fmt: skip
    bad_civil = {"request_id": "bad-civil", "service_code": service, "channel": "mobile",
                 "fee_baisa": 5000, "civil_number": "12ab"}  # fmt: skip
    return [*good[:4], bad_fee, *good[4:], bad_civil]


def write_rows(path: Path, data: list[dict[str, object]]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(data[0]))
            writer.writeheader()
            writer.writerows(data)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    return path


def read_rejected(path: Path) -> tuple[list[str], str]:
    text = path.read_text()
    return [row["request_id"] for row in csv.DictReader(text.splitlines())], text


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
async def test_a_file_is_submitted_and_its_rejected_rows_are_written_back(
    stack: Stack, tmp_path: Path, kind: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / f"rows.{kind}", rows(service))
    worker = start_batch_worker(stack)
    try:
        code, out, err = await sanadctl(
            stack, "batch", "submit", str(path), "--center", center_id, "--chunk", "4",
            "--batch-id", f"cli-{kind}",
        )  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert code == 1, err  # some rows were refused
    summary = json.loads(out)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (10, 8, 2)
    request_ids, text = read_rejected(Path(summary["rejected_file"]))
    assert request_ids == ["bad-fee", "bad-civil"]
    assert "12ab" not in text  # civil numbers are masked in the rejected file
    assert "Traceback" not in err


async def test_a_batch_nobody_answers_in_time_is_answered_when_sent_again_with_its_id(
    stack: Stack, tmp_path: Path
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / "rows.csv", rows(service))
    submit = ("batch", "submit", str(path), "--center", center_id, "--batch-id", "late")
    # No batch worker yet: the batch waits in its queue, and the command gives up.
    code, out, err = await sanadctl(stack, *submit, "--wait", "2")
    assert code == 1
    assert "1 of 1 chunks sent, 0 answered within 2 s" in err
    assert "--batch-id late" in err
    assert "Traceback" not in err
    assert out == ""
    worker = start_batch_worker(stack)
    try:
        code, out, err = await sanadctl(stack, *submit, "--wait", "60")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert code == 1, err  # two rows refused, as when answered the first time
    summary = json.loads(out)
    assert (summary["accepted"], summary["rejected"]) == (8, 2)


async def test_an_unreachable_or_unprepared_broker_is_named_without_a_traceback(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_rows(tmp_path / "rows.ndjson", rows("ANY"))
    closed = f"amqp://guest:secret-word@127.0.0.1:{free_port()}/"
    code, out, err = await sanadctl(stack, "batch", "submit", str(path), "--amqp-url", closed)
    assert code == 1
    assert f"RabbitMQ at 127.0.0.1:{closed.rsplit(':', 1)[1].rstrip('/')}" in err
    assert "secret-word" not in err
    assert "Traceback" not in err
    assert out == ""
    # The broker is there, but nothing was ever declared under this prefix.
    unprepared = {**stack.env, "SANAD_AMQP_PREFIX": f"{stack.prefix}-never"}
    code, out, err = await sanadctl(stack, "batch", "submit", str(path), env=unprepared)
    assert code == 1
    assert f"no batch exchange '{stack.prefix}-never.batch'" in err
    assert "Traceback" not in err
    assert out == ""
    # The batch exchange exists but no queue is bound to it: the batch is returned, at once.
    unbound = f"{stack.prefix}-unbound"
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            Topology(unbound).batch_exchange, aio_pika.ExchangeType.DIRECT, auto_delete=True
        )
        env = {**stack.env, "SANAD_AMQP_PREFIX": unbound}
        code, out, err = await sanadctl(
            stack, "batch", "submit", str(path), "--wait", "60", env=env
        )
        await exchange.delete()
    assert code == 1
    assert "the broker refused the batch: no queue is bound to take it" in err
    assert "Traceback" not in err


async def test_a_batch_its_full_queue_refuses_is_named_with_how_to_send_it_again(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_rows(tmp_path / "rows.ndjson", rows("ANY"))
    full = Topology(f"{stack.prefix}-full")
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            full.batch_exchange, aio_pika.ExchangeType.DIRECT, auto_delete=True
        )
        # A quorum queue at its length limit nacks what is published to it (reject-publish).
        queue = await channel.declare_queue(
            full.batch_queue,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-max-length": 0, **AT_LEAST_ONCE},
        )
        await queue.bind(exchange, BATCH)
        await exchange.publish(aio_pika.Message(b"waiting"), routing_key=BATCH)
        env = {**stack.env, "SANAD_AMQP_PREFIX": full.prefix}
        try:
            code, out, err = await sanadctl(
                stack, "batch", "submit", str(path), "--batch-id", "b-full", env=env
            )
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()
    assert code == 1
    assert "the broker refused the batch: its queue is full" in err
    assert "send the file again with --batch-id b-full" in err
    assert "Traceback" not in err
    assert out == ""


async def test_a_file_sent_again_with_another_chunk_is_refused_before_a_row_is_stored_twice(
    stack: Stack, tmp_path: Path, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / "rows.csv", rows(service))
    submit = ("batch", "submit", str(path), "--center", center_id, "--batch-id", "rechunked")
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        code, out, err = await sanadctl(stack, *submit, "--chunk", "4")
        assert (code, json.loads(out)["accepted"]) == (1, 8), err
        # Chunks of 2: chunks 3 and 4 are ids never used, and rows 6 and 7 would be stored again.
        code, out, err = await sanadctl(stack, *submit, "--chunk", "2")
        stored = await db.transactions.count_documents({"center_id": center_id})
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
    assert code == 1
    assert "first chunk was refused, so the other 4 were not sent" in err
    assert "already used for a batch with other content" in err
    assert json.loads(out)["accepted"] == 0
    assert stored == 8
    assert "Traceback" not in err


async def test_a_file_sent_again_without_a_batch_id_stores_its_rows_once(
    stack: Stack, tmp_path: Path, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / "rows.csv", rows(service))
    submit = ("batch", "submit", str(path), "--center", center_id, "--chunk", "4")
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        code, first, err = await sanadctl(stack, *submit)
        assert (code, json.loads(first)["accepted"]) == (1, 8), err
        code, again, err = await sanadctl(stack, *submit)
        stored = await db.transactions.count_documents({"center_id": center_id})
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
    assert code == 1, err  # the same two rows refused, as the first time
    assert json.loads(again)["batch_id"] == json.loads(first)["batch_id"]
    assert json.loads(again)["accepted"] == 8
    assert stored == 8


@needs_rabbitmqctl
async def test_a_connection_lost_while_waiting_for_answers_is_named_at_once(stack: Stack) -> None:
    # The reply queue is exclusive: no answer can come once the connection is gone. Before, the
    # command waited out the whole --wait and then blamed the workers.
    center_id, service = await open_centre_with_service(stack)
    batch = events_pb2.BatchSubmission(
        batch_id=f"cut-{time.time_ns()}",
        center_id=center_id,
        items=[submit_request(center_id, service, "cut-1", beneficiary_civil_number="55551111")],
    )
    sending = asyncio.create_task(send(stack.amqp_url, stack.prefix, [batch], wait_s=120))
    name = f"sanad batch client {stack.prefix}"

    async def connected() -> bool:
        listing = await rabbitmqctl("list_connections", "pid", "client_properties", "-q")
        return name in listing

    async def queued() -> bool:  # published: no batch worker runs to answer it
        return await stack.queue_depth(Topology(stack.prefix).batch_queue) == 1

    await eventually(connected, within_s=10)
    await eventually(queued, within_s=10)
    await asyncio.sleep(0.2)  # its confirm on its way back to the client
    listing = await rabbitmqctl("list_connections", "pid", "client_properties", "-q")
    (pid,) = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    await rabbitmqctl("close_connection", pid, "test: the submitter's connection dropped")
    with pytest.raises(Cut) as cut:
        async with asyncio.timeout(20):
            await sending
    assert (cut.value.confirmed, cut.value.total) == (1, 1)
