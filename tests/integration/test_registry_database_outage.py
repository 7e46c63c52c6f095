"""A MongoDB outage makes registry calls UNAVAILABLE quickly, never INTERNAL or a 120 s wait."""

import time

import grpc
import pytest

from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.app import build_app
from services.registry.settings import RegistrySettings
from tests.integration.conftest import StoppableDatabase, eventually

pytestmark = pytest.mark.integration
TIMEOUT_MS = 1500


def centre() -> pb.Center:
    return pb.Center(
        name_ar="مركز الوسام",
        name_en="Al Wisam Centre",
        owner_establishment="مؤسسة الوسام",
        governorate_code="DA",
        wilayat_code="DA-BAH",
        omani_staff=2,
        total_staff=3,
        licence=pb.Licence(number=f"LIC-{time.time_ns()}"),
    )


async def test_calls_during_an_outage_are_unavailable_and_work_again_after_it(
    stoppable_database: StoppableDatabase, database_name: str
) -> None:
    app = build_app(
        RegistrySettings(
            mongo_url=stoppable_database.url,
            mongo_database=database_name,
            mongo_timeout_ms=TIMEOUT_MS,
            grpc_host="127.0.0.1",
            shutdown_grace_s=0.5,
        )
    )
    port = await app.start(0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            registered = await stub.RegisterCenter(pb.RegisterCenterRequest(center=centre()))
            center_id = registered.center.id
            approve = pb.TransitionLicenceRequest(
                center_id=center_id, action=pb.LICENCE_ACTION_APPROVE, reason="documents"
            )

            stoppable_database.stop()
            calls = (
                lambda: stub.RegisterCenter(pb.RegisterCenterRequest(center=centre()), timeout=30),
                lambda: stub.TransitionLicence(approve, timeout=30),
                lambda: stub.GetCenter(pb.GetCenterRequest(id=center_id), timeout=30),
            )
            for call in calls:
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call()
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                # Bounded by the MongoDB timeouts, not the caller's 30 s (a transaction's abort
                # gets a fresh timeout of its own, PyMongo's CSOT rules): measured 1.5-3 s, with
                # room for a loaded machine.
                assert time.monotonic() - started < 10 * TIMEOUT_MS / 1000

            stoppable_database.start()

            async def approved() -> bool:
                try:
                    reply = await stub.TransitionLicence(approve, timeout=5)
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    return False
                return reply.center.licence.status == pb.LICENCE_STATUS_INITIALLY_APPROVED

            await eventually(approved, within_s=30, every_s=0.5)
    finally:
        await app.stop()
