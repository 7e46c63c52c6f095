"""Test support: every RPC of every Sanad service answered by an empty echo behind start_server.

The real request classes deserialize the requests, so the policy table's limits see real
messages; the answer is always empty bytes. Clients call by full method name with raw bytes.
"""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.security.audit import AuditEvent
from sanad.settings import ServerSettings
from sanad.v1 import audit_pb2, intake_pb2, metrics_pb2, registry_pb2

FILES = (registry_pb2, intake_pb2, metrics_pb2, audit_pb2)


def every_method() -> Iterator[MethodDescriptor]:
    """Every RPC declared in the protos."""
    for file in FILES:
        for service in file.DESCRIPTOR.services_by_name.values():
            yield from service.methods


def full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> Any:
    return message_factory.GetMessageClass(method.input_type)


def _handler(method: MethodDescriptor) -> grpc.RpcMethodHandler:
    deserialize = request_class(method).FromString

    async def unary(request: Any, context: Any) -> bytes:
        return b""

    async def streaming(request: Any, context: Any) -> AsyncIterator[bytes]:
        yield b""

    def same(data: bytes) -> bytes:
        return data

    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, deserialize, same)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, deserialize, same)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, deserialize, same)
    return grpc.unary_unary_rpc_method_handler(unary, deserialize, same)


def registrations() -> list[Registration]:
    found = []
    for file in FILES:
        for service in file.DESCRIPTOR.services_by_name.values():
            handler = grpc.method_handlers_generic_handler(
                service.full_name, {m.name: _handler(m) for m in service.methods}
            )
            found.append(
                Registration(
                    service.full_name, lambda s, h=handler: s.add_generic_rpc_handlers((h,))
                )
            )
    return found


@dataclass
class MemoryAudit:
    """An AuditLog stand-in that keeps events in a list."""

    events: list[AuditEvent] = field(default_factory=list)
    # How long each record() was allowed to wait for its write (None: until it ends).
    waits: list[float | None] = field(default_factory=list)

    async def record(self, event: AuditEvent, within_s: float | None = None) -> None:
        self.events.append(event)
        self.waits.append(within_s)

    async def drain(self) -> None:
        """Nothing is ever queued: record() keeps the event at once."""


async def start_echo(settings: ServerSettings, audit: MemoryAudit | None = None) -> RunningServer:
    async def up() -> bool:
        return True

    return await start_server(
        settings, 0, registrations(), checks={"up": up}, audit_log=audit, name="echo"
    )  # type: ignore[arg-type]


async def call(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    request: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.StatusCode:
    """Invoke any kind of RPC once and return its status code."""
    name = full_name(method)
    try:
        if method.client_streaming and method.server_streaming:
            stream = channel.stream_stream(name)(iter([request]), metadata=metadata, timeout=5)
            _ = [r async for r in stream]
        elif method.client_streaming:
            await channel.stream_unary(name)(iter([request]), metadata=metadata, timeout=5)
        elif method.server_streaming:
            stream = channel.unary_stream(name)(request, metadata=metadata, timeout=5)
            _ = [r async for r in stream]
        else:
            await channel.unary_unary(name)(request, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK
