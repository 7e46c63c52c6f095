"""Settings of the intake service."""

from pydantic import Field

from sanad.amqp.packing import MAX_PACK_ITEMS
from sanad.settings import RegistryFollowerSettings


class IntakeSettings(RegistryFollowerSettings):
    """SANAD_INTAKE_PORT, SANAD_REGISTRY_TARGET and friends."""

    intake_port: int = 50052
    intake_metrics_port: int = 9102
    # Longest wait for a broker confirm before answering UNAVAILABLE.
    publish_timeout_s: float = Field(default=2.0, gt=0, le=600)
    # Submissions published while this many messages await their confirms go out together,
    # up to pack_max_items in one message (sanad.amqp.packing); 1 and 1 publish each alone.
    # One in flight packs the most: against four, quick benches gave 907 against 749 unary
    # calls/s and a half-load p99 of 106 against 194 ms (experiments: 886-954 against 814-818/s).
    pack_max_inflight: int = Field(default=1, ge=1, le=1000)
    pack_max_items: int = Field(default=256, ge=1, le=MAX_PACK_ITEMS)
    # Unconfirmed publishes in flight per SubmitTransactions stream, and the bytes their
    # items may hold together (services.intake.streaming.StreamLimits).
    stream_max_inflight: int = Field(default=256, ge=1)
    stream_max_inflight_bytes: int = Field(default=512 * 1024, ge=1)
    # Items one SubmitTransactions stream may carry; more get RESOURCE_EXHAUSTED.
    stream_max_items: int = Field(default=100_000, ge=1)
    # How often WatchTransaction re-reads the stored transaction.
    watch_poll_s: float = Field(default=0.2, gt=0, le=60)
    # Run on uvloop (SANAD_USE_UVLOOP=false: asyncio's own loop, e.g. to rule uvloop out).
    use_uvloop: bool = True
