"""Streams that stay open while sending nothing are held to their credential too: a Health
Watch, a registry watch, a WatchTransaction or a SubmitTransactions stream that waits, opened
before its client certificate or token was revoked, ends UNAUTHENTICATED within about two
reload intervals of the revocation, not at an answer that may never come."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.settings import ServerSettings
from sanad.v1 import intake_pb2, registry_pb2
from tests.unit.test_security_revocation import RELOAD_S, jwt_subject, serial
from tests.unit.test_security_signing_keys import replace
from tests.unit.test_security_tls import client

WATCH_CENTERS = "/sanad.v1.RegistryService/WatchCenters"
SUBMIT_STREAM = "/sanad.v1.IntakeService/SubmitTransactions"
# Many reload intervals, so a busy machine still sees the end within it.
WITHIN_S = 60 * RELOAD_S


def idle_services() -> list[Registration]:
    """WatchCenters answers synced and then waits for a change that never comes; the
    SubmitTransactions stream answers each item and waits for the next."""

    async def watch(request: Any, context: Any) -> AsyncIterator[bytes]:
        yield registry_pb2.WatchCentersResponse(
            synced=registry_pb2.WatchSynced(revision=0)
        ).SerializeToString()
        await asyncio.Event().wait()

    async def submit(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield intake_pb2.SubmitTransactionsResponse().SerializeToString()

    registry = grpc.method_handlers_generic_handler(
        "sanad.v1.RegistryService",
        {
            "WatchCenters": grpc.unary_stream_rpc_method_handler(
                watch, registry_pb2.WatchCentersRequest.FromString, lambda b: b
            )
        },
    )
    intake = grpc.method_handlers_generic_handler(
        "sanad.v1.IntakeService",
        {
            "SubmitTransactions": grpc.stream_stream_rpc_method_handler(
                submit, intake_pb2.SubmitTransactionsRequest.FromString, lambda b: b
            )
        },
    )
    return [
        Registration("sanad.v1.RegistryService", lambda s: s.add_generic_rpc_handlers((registry,))),
        Registration("sanad.v1.IntakeService", lambda s: s.add_generic_rpc_handlers((intake,))),
    ]


async def start(pki: Path, **extra: object) -> RunningServer:
    async def up() -> bool:
        return True

    settings = ServerSettings(
        grpc_host="127.0.0.1",
        tls_cert_file=str(pki / "registry.pem"),
        tls_key_file=str(pki / "registry.key"),
        tls_ca_file=str(pki / "ca.pem"),
        auth_mode="required",
        auth_jwt_keys_reload_s=RELOAD_S,
        **extra,
    )
    running = await start_server(settings, 0, idle_services(), checks={"up": up}, name="idle")
    await running.health.check_once()
    return running


async def ending(stream: Any) -> tuple[grpc.StatusCode, str]:
    """The code and details the stream ends with, or OK and "still open" when it is still
    open WITHIN_S from now (then cancelled)."""
    try:
        async with asyncio.timeout(WITHIN_S):
            async for _ in stream:
                pass
    except TimeoutError:
        stream.cancel()
        return grpc.StatusCode.OK, "still open"
    except grpc.aio.AioRpcError as error:
        return error.code(), str(error.details())
    return grpc.StatusCode.OK, "ended"


@pytest.fixture
def revoked(tmp_path: Path) -> Path:
    path = tmp_path / "revoked.txt"
    path.write_bytes(b"")
    return path


async def test_a_health_watch_ends_once_its_client_certificate_is_revoked(
    pki: Path, revoked: Path
) -> None:
    running = await start(pki, tls_client_auth=True, auth_revoked_certs_file=str(revoked))
    try:
        async with client(running.port, pki / "ca.pem", "admin", pki) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            answers = aiter(watch)
            assert (await anext(answers)).status == health_pb2.HealthCheckResponse.SERVING
            replace(revoked, f"{serial(pki, 'admin'):x}\n".encode())
            ended = await ending(watch)
            assert ended == (
                grpc.StatusCode.UNAUTHENTICATED,
                "the client certificate has been revoked",
            )
    finally:
        await running.stop(0)


async def test_an_idle_registry_watch_ends_once_its_client_certificate_is_revoked(
    pki: Path, revoked: Path
) -> None:
    running = await start(pki, tls_client_auth=True, auth_revoked_certs_file=str(revoked))
    try:
        async with client(running.port, pki / "ca.pem", "admin", pki) as channel:
            request = registry_pb2.WatchCentersRequest().SerializeToString()
            watch = channel.unary_stream(WATCH_CENTERS)(request)
            answers = aiter(watch)
            await anext(answers)  # synced: the watch now waits for a change
            replace(revoked, f"{serial(pki, 'admin'):x}\n".encode())
            code, details = await ending(watch)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "no longer holds: the client certificate has been revoked" in details
    finally:
        await running.stop(0)


async def test_an_idle_submission_stream_ends_once_its_token_is_revoked(
    pki: Path, tmp_path: Path
) -> None:
    revoked_tokens = tmp_path / "revoked-tokens.txt"
    revoked_tokens.write_bytes(b"")
    running = await start(
        pki,
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        auth_revoked_tokens_file=str(revoked_tokens),
    )
    token = (pki / "tokens" / "centre.jwt").read_text().strip()
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        async with client(running.port, pki / "ca.pem") as channel:
            items: asyncio.Queue[bytes] = asyncio.Queue()
            await items.put(intake_pb2.SubmitTransactionsRequest().SerializeToString())

            async def requests() -> AsyncIterator[bytes]:
                while True:
                    yield await items.get()

            stream = channel.stream_stream(SUBMIT_STREAM)(requests(), metadata=metadata)
            answers = aiter(stream)
            await anext(answers)  # the first item answered: the caller sends nothing more
            replace(revoked_tokens, f"{jwt_subject(token)}\n".encode())
            code, details = await ending(stream)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "no longer holds: the bearer token has been revoked" in details
    finally:
        await running.stop(0)
