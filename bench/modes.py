"""How much each mode of the bench measures: a quick look, or the full run the README shows."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    seconds: float
    # Closed-loop callers at which the maximum unary rate is sought (the best one counts).
    concurrencies: tuple[int, ...]
    queue_messages: int
    insert_documents: int
    stream_items: int
    streams: int
    batch_items: int
    report_calls: int
    # Share of the Ad Dakhiliyah 2023-2024 dataset seeded before the reports are measured.
    seed_scale: float


MODES = {
    "quick": Mode(
        seconds=5,
        concurrencies=(32, 128),
        queue_messages=20_000,
        insert_documents=50_000,
        stream_items=2_500,
        streams=4,
        batch_items=20_000,
        report_calls=20,
        seed_scale=0.25,
    ),
    "full": Mode(
        seconds=20,
        concurrencies=(64, 256),
        queue_messages=200_000,
        insert_documents=1_000_000,
        stream_items=25_000,
        streams=4,
        batch_items=1_000_000,
        report_calls=100,
        seed_scale=1.0,
    ),
}
