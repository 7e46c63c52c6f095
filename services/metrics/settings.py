"""Settings of the metrics service."""

from sanad.settings import ServerSettings


class MetricsSettings(ServerSettings):
    """SANAD_METRICS_PORT and SANAD_METRICS_METRICS_PORT choose its ports."""

    metrics_port: int = 50053
    metrics_metrics_port: int = 9103
