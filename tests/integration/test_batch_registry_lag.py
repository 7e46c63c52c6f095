"""A batch sent right after its centre was activated, or offered a service, is stored whole: the
batch worker asks the registry itself about the items its copy refuses (before, a batch that
outran the worker's watch streams had every item answered refused)."""

import asyncio
import time
import uuid

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.cli.batch_send import send
from sanad.devstack.mongo_server import free_port
from sanad.v1 import events_pb2, intake_pb2, registry_pb2, registry_pb2_grpc
from tests.integration.conftest import (
    COUNTER,
    eventually,
    in_process_settings,
    served_intake,
)
from tests.integration.registry_support import centre, visa_renewal
from tests.integration.workers_support import delete_prefix_retry_queues
from workers.batch.app import build_app
from workers.batch.settings import BatchSettings
from workers.lifecycle import run_until_stopped

pytestmark = pytest.mark.integration


def items(service: str, count: int, run: str) -> list[intake_pb2.SubmitTransactionRequest]:
    return [
        intake_pb2.SubmitTransactionRequest(
            request_id=f"{run}-{n}",
            service_code=service,
            channel=COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number=f"{70_000_000 + n}",
        )
        for n in range(count)
    ]


async def test_a_batch_right_after_activation_or_an_offer_is_stored_whole(
    mongo_url: str,
    database_name: str,
    amqp_url: str,
    amqp_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served_intake(mongo_url, database_name, amqp_url, amqp_prefix) as up:
        target = f"127.0.0.1:{up.registry_port}"
        settings = BatchSettings(
            **in_process_settings(
                mongo_url,
                database_name,
                amqp_url=amqp_url,
                amqp_prefix=amqp_prefix,
                registry_target=target,
                batch_chunk=3,
            )
        )
        worker = build_app(settings)
        stop = asyncio.Event()
        running = asyncio.create_task(run_until_stopped(worker, free_port(), stop))
        channel = grpc.aio.insecure_channel(target)
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        try:

            async def ready() -> bool:
                return worker.snapshot.ready

            await eventually(ready, within_s=15)
            # Across processes the watch streams bring a change milliseconds after the
            # registry's OK; here they are held back altogether, so only the registry itself
            # can tell the worker of the changes.
            for watch in worker.snapshot.watches:
                monkeypatch.setattr(watch, "apply", lambda _: None)
            code = f"ROP-VISA-{time.time_ns()}"
            await registry.AddCatalogService(
                registry_pb2.AddCatalogServiceRequest(service=visa_renewal(code)), timeout=10
            )
            reply = await registry.RegisterCenter(
                registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}", code)),
                timeout=10,
            )
            center_id = reply.center.id
            for action in (
                registry_pb2.LICENCE_ACTION_APPROVE,
                registry_pb2.LICENCE_ACTION_ACTIVATE,
            ):
                await registry.TransitionLicence(
                    registry_pb2.TransitionLicenceRequest(
                        center_id=center_id, action=action, reason="ok"
                    ),
                    timeout=10,
                )
            run = uuid.uuid4().hex
            first = events_pb2.BatchSubmission(
                batch_id=f"activated-{run}", center_id=center_id, items=items(code, 7, run)
            )
            [answer] = await send(amqp_url, amqp_prefix, [first], wait_s=60)
            assert not answer.rejected
            assert len(answer.accepted) == 7

            another = f"ROP-PERMIT-{time.time_ns()}"
            await registry.AddCatalogService(
                registry_pb2.AddCatalogServiceRequest(service=visa_renewal(another)), timeout=10
            )
            await registry.SetCenterServices(
                registry_pb2.SetCenterServicesRequest(
                    center_id=center_id, offered_service_codes=[code, another]
                ),
                timeout=10,
            )
            second = events_pb2.BatchSubmission(
                batch_id=f"offered-{run}",
                center_id=center_id,
                items=items(another, 4, f"{run}-offered"),
            )
            [answer] = await send(amqp_url, amqp_prefix, [second], wait_s=60)
            assert not answer.rejected
            assert len(answer.accepted) == 4
            assert center_id not in worker.snapshot.centers  # the copy never saw them
            client: AsyncMongoClient = AsyncMongoClient(mongo_url)
            stored = client[database_name].transactions
            assert await stored.count_documents({"center_id": center_id}) == 11
            await client.close()
        finally:
            stop.set()
            await running
            await channel.close()
            await delete_prefix_retry_queues(amqp_url, amqp_prefix)
