"""Settings of the batch worker."""

from sanad.settings import ServerSettings


class BatchSettings(ServerSettings):
    """SANAD_BATCH_* choose its ports, the size limits and the storage chunk."""

    registry_target: str = "127.0.0.1:50051"
    batch_health_port: int = 50062
    batch_metrics_port: int = 9105
    # Batches are large; hold few unacked at a time.
    batch_prefetch: int = 2
    # Largest number of items (items + history_items) one BatchSubmission may carry.
    batch_max_items: int = 5000
    # Largest message body, refused unparsed: 16 MiB is over 3 KiB an item at 5000 items (a
    # seed history item is under 200 bytes, a full history of long notes can pass 50 KiB).
    batch_max_bytes: int = 16 * 1024 * 1024
    # Items judged, then stored in one MongoDB transaction, at a time.
    batch_chunk: int = 1000
