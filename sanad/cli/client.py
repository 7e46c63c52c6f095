"""The connection side of sanadctl: one channel per target, identity and deadline on every call."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from sanad.cli.reach import Unreachable, unreachable
from sanad.rpc.identity import IDENTITY_KEY
from sanad.security.authenticate import AUTHORIZATION_KEY
from sanad.security.tls import TlsFileError, client_credentials
from sanad.telemetry.logs import REQUEST_ID_KEY
from sanad.v1 import intake_pb2_grpc, metrics_pb2_grpc, registry_pb2_grpc

# How an error names each TLS file: its option and the variable that sets it.
FILE_OPTIONS = ("--ca (SANAD_CA_FILE)", "--cert (SANAD_CERT_FILE)", "--key (SANAD_KEY_FILE)")


class CredentialError(Exception):
    """A CA, certificate or key file named on the command line cannot be read, or the files
    named do not go together."""


@dataclass
class Client:
    """Stubs for the three services over lazily opened channels.

    Channels use TLS when a CA file is given (with a client certificate when cert and key are
    given); a bearer token, when given, travels as `authorization` metadata on every call.
    """

    registry_target: str
    intake_target: str
    metrics_target: str
    identity: str
    timeout: float
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    token: str = ""
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)
    # The request id of the last call made: a call that ran out of time has no trailers to
    # return it, and the server may have handled it all the same.
    last_request_id: str = ""
    # The service of the last stub made, and its address: what a call no server answered names.
    last_service: tuple[str, str] = ("", "")

    def check_pairing(self) -> None:
        """Refuse a certificate without its key or a key without its certificate (gRPC would
        abort the whole process), and either without a CA (the channels would be plaintext)."""
        if self.cert_file and not self.key_file:
            raise CredentialError(
                "--cert (SANAD_CERT_FILE) is set without --key (SANAD_KEY_FILE), its private key"
            )
        if self.key_file and not self.cert_file:
            raise CredentialError(
                "--key (SANAD_KEY_FILE) is set without --cert (SANAD_CERT_FILE), its certificate"
            )
        if self.cert_file and not self.ca_file:
            raise CredentialError(
                "--cert and --key are set without --ca (SANAD_CA_FILE): mutual TLS needs the CA"
            )

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials from the CA, certificate and key files; None for plaintext."""
        self.check_pairing()
        if not self.ca_file:
            return None
        try:
            return client_credentials(self.ca_file, self.cert_file, self.key_file, FILE_OPTIONS)
        except TlsFileError as error:
            raise CredentialError(str(error)) from None

    def channel(self, target: str) -> grpc.Channel:
        """The channel to a target, opened on first use."""
        if target not in self._channels:
            credentials = self.credentials()
            if credentials is not None:
                self._channels[target] = grpc.secure_channel(target, credentials)
            else:
                self._channels[target] = grpc.insecure_channel(target)
        return self._channels[target]

    def registry(self) -> Any:
        """A RegistryService stub."""
        self.last_service = ("registry", self.registry_target)
        return registry_pb2_grpc.RegistryServiceStub(self.channel(self.registry_target))

    def intake(self) -> Any:
        """An IntakeService stub."""
        self.last_service = ("intake", self.intake_target)
        return intake_pb2_grpc.IntakeServiceStub(self.channel(self.intake_target))

    def metrics(self) -> Any:
        """A MetricsService stub."""
        self.last_service = ("metrics", self.metrics_target)
        return metrics_pb2_grpc.MetricsServiceStub(self.channel(self.metrics_target))

    def unreachable(self, error: grpc.RpcError, service: str, target: str) -> Unreachable | None:
        """Why a call to the service at target reached no server that could answer it."""
        return unreachable(
            error, service, target, tls=bool(self.ca_file), client_certificate=bool(self.cert_file)
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The identity, the bearer token if any, and a fresh request id, sent with every call."""
        self.last_request_id = uuid.uuid4().hex
        sent = [(IDENTITY_KEY, self.identity), (REQUEST_ID_KEY, self.last_request_id)]
        if self.token:
            sent.append((AUTHORIZATION_KEY, f"Bearer {self.token}"))
        return tuple(sent)

    def call(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        """Invoke a unary method with the metadata and a deadline."""
        deadline = self.timeout if timeout is None else timeout
        return method(request, timeout=deadline, metadata=self.metadata())

    def close(self) -> None:
        """Close every channel that was opened."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
