"""Settings of the metrics service."""

import math
from typing import ClassVar

from pydantic import model_validator

from sanad.settings import ServerSettings


class MetricsSettings(ServerSettings):
    """SANAD_METRICS_*_PORT choose its ports; SANAD_AWARD_* shape the award score."""

    uses_amqp: ClassVar[bool] = False  # no RabbitMQ connection

    metrics_port: int = 50053
    metrics_metrics_port: int = 9103
    # Where centre facts (wilayat, Omani staff, licence history) are read from.
    registry_target: str = "127.0.0.1:50051"

    # Award weights (they must sum to 1) and the references that normalise components.
    award_weight_speed: float = 0.35
    award_weight_quality: float = 0.25
    award_weight_productivity: float = 0.25
    award_weight_satisfaction: float = 0.15
    award_median_ceiling_hours: float = 72.0
    award_productivity_target_per_staff: float = 800.0

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> "MetricsSettings":
        total = (
            self.award_weight_speed
            + self.award_weight_quality
            + self.award_weight_productivity
            + self.award_weight_satisfaction
        )
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"award weights must sum to 1, not {total}")
        if self.award_median_ceiling_hours <= 0 or self.award_productivity_target_per_staff <= 0:
            raise ValueError("award references must be greater than zero")
        return self
