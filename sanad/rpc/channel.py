"""Client channels between services: message limits, keepalive, and retries by service config."""

import json

import grpc

from sanad.rpc.server import KEEPALIVE_TIME_MS, keepalive_client_options, message_options
from sanad.security.tls import channel_credentials
from sanad.settings import CommonSettings


def retry_config(service: str, methods: list[str]) -> str:
    """A service config retrying the named idempotent methods on UNAVAILABLE."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": service, "method": m} for m in methods],
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


# The longest a channel waits before trying a server that refused it again. gRPC's own default
# grows to 120 s: after a 90 s registry outage, intake and metrics answered UNAVAILABLE for 17
# and 33 s more with the registry serving again (a restart helper's repro), the watch's own
# retries (0.1 to 5 s) waiting on the channel's. A try is a refused connection: cheap.
RECONNECT_BACKOFF_MAX_MS = 2000


def _options(
    max_message_bytes: int, service_config: str | None, keepalive_ms: int = KEEPALIVE_TIME_MS
) -> list[tuple[str, object]]:
    # The keepalive comes from the same constant as the servers' ping allowance (server.py).
    options: list[tuple[str, object]] = [
        *message_options(max_message_bytes),
        *keepalive_client_options(keepalive_ms),
        ("grpc.enable_retries", 1),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ]
    if service_config:
        options.append(("grpc.service_config", service_config))
    return options


def insecure_channel(
    target: str,
    max_message_bytes: int,
    service_config: str | None = None,
    keepalive_ms: int = KEEPALIVE_TIME_MS,
) -> grpc.aio.Channel:
    """A plaintext channel for the dev profile; keepalive_ms is shortened only by tests."""
    return grpc.aio.insecure_channel(
        target, options=_options(max_message_bytes, service_config, keepalive_ms)
    )


def secure_channel(
    target: str,
    credentials: grpc.ChannelCredentials,
    max_message_bytes: int,
    service_config: str | None = None,
) -> grpc.aio.Channel:
    """A TLS channel with the same limits and keepalive as the plaintext one."""
    return grpc.aio.secure_channel(
        target, credentials, options=_options(max_message_bytes, service_config)
    )


def service_channel(
    settings: CommonSettings, target: str, service_config: str | None = None
) -> grpc.aio.Channel:
    """A channel to another Sanad service: TLS (with this process's client certificate) when
    SANAD_TLS_CERT_FILE is set, plaintext otherwise (dev profile only; production refuses it).
    """
    options = _options(settings.grpc_max_message_bytes, service_config)
    if not settings.grpc_tls:
        return grpc.aio.insecure_channel(target, options=options)
    if settings.tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls_server_name))
    return grpc.aio.secure_channel(target, channel_credentials(settings), options=options)
