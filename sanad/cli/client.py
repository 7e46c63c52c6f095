"""The connection side of sanadctl: one channel per target, identity and deadline on every call."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from sanad.rpc.identity import IDENTITY_KEY
from sanad.v1 import intake_pb2_grpc, metrics_pb2_grpc, registry_pb2_grpc

REQUEST_ID_KEY = "x-request-id"


@dataclass
class Client:
    """Stubs for the three services over lazily opened plaintext channels."""

    registry_target: str
    intake_target: str
    metrics_target: str
    identity: str
    timeout: float
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, target: str) -> grpc.Channel:
        """The channel to a target, opened on first use."""
        if target not in self._channels:
            self._channels[target] = grpc.insecure_channel(target)
        return self._channels[target]

    def registry(self) -> Any:
        """A RegistryService stub."""
        return registry_pb2_grpc.RegistryServiceStub(self.channel(self.registry_target))

    def intake(self) -> Any:
        """An IntakeService stub."""
        return intake_pb2_grpc.IntakeServiceStub(self.channel(self.intake_target))

    def metrics(self) -> Any:
        """A MetricsService stub."""
        return metrics_pb2_grpc.MetricsServiceStub(self.channel(self.metrics_target))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The identity and a fresh request id, sent with every call."""
        return ((IDENTITY_KEY, self.identity), (REQUEST_ID_KEY, uuid.uuid4().hex))

    def call(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        """Invoke a unary method with the metadata and a deadline."""
        deadline = self.timeout if timeout is None else timeout
        return method(request, timeout=deadline, metadata=self.metadata())

    def close(self) -> None:
        """Close every channel that was opened."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
