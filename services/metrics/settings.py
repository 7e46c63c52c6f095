"""Settings of the metrics service."""

import math
from typing import ClassVar

from pydantic import Field

from sanad.settings import RegistryFollowerSettings


class MetricsSettings(RegistryFollowerSettings):
    """SANAD_METRICS_*_PORT choose its ports; SANAD_AWARD_* shape the award score."""

    uses_amqp: ClassVar[bool] = False  # no RabbitMQ connection
    uses_civil_id_secret: ClassVar[bool] = False

    metrics_port: int = 50053
    metrics_metrics_port: int = 9103

    # Award weights (they must sum to 1) and the references that normalise components.
    award_weight_speed: float = 0.35
    award_weight_quality: float = 0.25
    award_weight_productivity: float = 0.25
    award_weight_satisfaction: float = 0.15
    award_median_ceiling_hours: float = 72.0
    award_productivity_target_per_staff: float = 800.0
    # Completed transactions in the year a centre needs to be ranked (0: every active centre).
    award_min_completed: int = Field(default=100, ge=0, le=1_000_000_000)

    def cross_problems(self) -> list[str]:
        """The common checks, and the award's: its weights and references."""
        weights = {
            "SANAD_AWARD_WEIGHT_SPEED": self.award_weight_speed,
            "SANAD_AWARD_WEIGHT_QUALITY": self.award_weight_quality,
            "SANAD_AWARD_WEIGHT_PRODUCTIVITY": self.award_weight_productivity,
            "SANAD_AWARD_WEIGHT_SATISFACTION": self.award_weight_satisfaction,
        }
        problems = super().cross_problems()
        problems += [
            f"{name}: must be between 0 and 1" for name, v in weights.items() if not 0 <= v <= 1
        ]
        total = sum(weights.values())
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            problems.append(
                f"{' + '.join(weights)}: the award weights must sum to 1, not {total:g}"
            )
        references = {
            "SANAD_AWARD_MEDIAN_CEILING_HOURS": self.award_median_ceiling_hours,
            "SANAD_AWARD_PRODUCTIVITY_TARGET_PER_STAFF": self.award_productivity_target_per_staff,
        }
        problems += [
            f"{name}: must be greater than zero"
            for name, v in references.items()
            if not (v > 0 and math.isfinite(v))  # nan is neither above zero nor at or below it
        ]
        return problems
