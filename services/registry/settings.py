"""Settings of the registry service."""

from typing import ClassVar

from pydantic import Field

from sanad.settings import ServerSettings


class RegistrySettings(ServerSettings):
    """SANAD_REGISTRY_PORT and SANAD_REGISTRY_METRICS_PORT choose its ports."""

    uses_amqp: ClassVar[bool] = False  # no RabbitMQ connection
    uses_civil_id_secret: ClassVar[bool] = False

    registry_port: int = 50051
    registry_metrics_port: int = 9101
    # How often a watch stream looks for changes made by other registry replicas.
    watch_poll_s: float = Field(default=0.25, gt=0, le=60)
