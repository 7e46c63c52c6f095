"""Client channels between services: message limits, keepalive, and retries by service config."""

import json

import grpc

from sanad.rpc.server import message_options


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


def insecure_channel(
    target: str, max_message_bytes: int, service_config: str | None = None
) -> grpc.aio.Channel:
    """A plaintext channel for the dev profile."""
    options = [
        *message_options(max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
    ]
    if service_config:
        options.append(("grpc.service_config", service_config))
    return grpc.aio.insecure_channel(target, options=options)
