"""The registry asked directly about a submission the snapshot refuses.

Intake judges submissions against its copy of the registry (snapshot.py), which the watch
streams bring up to date a few milliseconds after the registry answered a change. A client that
activated a centre, offered it a service or changed a fee and submitted at once was refused
against the copy before the change reached it (9 times in 10 in a helper's trial), with codes a
client does not retry (FAILED_PRECONDITION, NOT_FOUND, INVALID_ARGUMENT on the fee). So a
refusal that rests on the registry's state is judged again against the registry as it is now:
one call for the centre and one for the service, made for refused submissions only.
"""

import asyncio

import grpc

from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.intake.domain import CenterView, ServiceView
from services.intake.snapshot import center_view, service_view

# The longest a refused submission waits for the registry's answer (less when the caller's
# deadline is nearer).
LOOKUP_S = 2.0
# What the registry answers for a key it does not have (or will not take as a key).
UNKNOWN = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


class RegistryLookup:
    """A centre and a catalogue service as the registry has them now."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = registry_pb2_grpc.RegistryServiceStub(channel)

    async def current(
        self, center_id: str, service_code: str, timeout_s: float | None
    ) -> tuple[CenterView | None, ServiceView | None] | None:
        """Both as the registry has them (None for one it does not know); None when the
        registry did not answer in time."""
        timeout = LOOKUP_S if timeout_s is None else min(timeout_s, LOOKUP_S)
        try:
            center, service = await asyncio.gather(
                self._center(center_id, timeout), self._service(service_code, timeout)
            )
        except grpc.aio.AioRpcError:
            return None
        return center, service

    async def _center(self, center_id: str, timeout_s: float) -> CenterView | None:
        try:
            reply = await self.stub.GetCenter(pb.GetCenterRequest(id=center_id), timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            if error.code() in UNKNOWN:
                return None
            raise
        return center_view(reply.center)

    async def _service(self, code: str, timeout_s: float) -> ServiceView | None:
        try:
            reply = await self.stub.GetCatalogService(
                pb.GetCatalogServiceRequest(code=code), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in UNKNOWN:
                return None
            raise
        return service_view(reply.service)
