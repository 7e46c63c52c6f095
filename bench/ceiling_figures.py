"""The same-run ceilings every figure is judged against (DESIGN section 8)."""

from bench import ceilings, system
from bench.cpu import CpuMeter
from bench.modes import Mode
from bench.report import Figure
from bench.windows import fastest_unary
from sanad import records
from sanad.devstack.launcher import LaunchedStack
from sanad.domain.ids import new_id

UNARY = "ceiling: no-op gRPC unary"
STREAM = "ceiling: no-op gRPC streaming"
PUBLISH = "ceiling: raw publish-with-confirm"
CONSUME = "ceiling: raw consume-with-ack"
INSERT = "ceiling: raw insert_many"
INSERT_INDEXED = "ceiling: raw insert_many, with the transactions' listing index"
# The indexed insert ceiling writes this share of the plain one's documents (it is far slower).
INDEXED_SHARE = 10


async def measure_ceilings(
    mode: Mode, stack: LaunchedStack, meter: CpuMeter
) -> tuple[dict[str, float], list[Figure]]:
    """The ceilings by name, and as figures with the CPU each spent."""
    # The same request generator and load functions as the real intake gets (bench.system).
    make = system.Submissions(new_id(), "BENCH-CEILING")
    noop = ceilings.NoopProcess(stack.env)
    try:
        await noop.wait_serving()
        unary, unary_cpu, callers = await fastest_unary(noop.target, make, mode, meter)
        with meter.window() as stream_cpu:
            stream = await system.streaming(noop.target, make, mode.stream_items, mode.streams)
    finally:
        noop.stop()
    with meter.window() as queue_cpu:
        published, consumed = await ceilings.amqp_publish_consume(
            stack.env["SANAD_AMQP_URL"],
            f"{stack.env['SANAD_AMQP_PREFIX']}.bench-raw",
            mode.queue_messages,
            window=256,
        )
    url = stack.mongo_url
    # The window of each insert ceiling closes before its collection is dropped (raw_collection).
    async with ceilings.raw_collection(url, "sanad") as collection:
        with meter.window() as insert_cpu:
            inserted = await ceilings.insert_many(collection, mode.insert_documents, chunk=1000)
    # Not a target's ceiling: what the database takes with the one secondary index every stored
    # transaction needs, beside the plain ceiling the batch and end-to-end targets use.
    indexed_documents = mode.insert_documents // INDEXED_SHARE
    async with ceilings.raw_collection(url, "sanad", index=records.LISTING_INDEX) as collection:
        with meter.window() as indexed_cpu:
            indexed = await ceilings.insert_many(collection, indexed_documents, chunk=1000)
    values = {
        UNARY: unary.rate,
        STREAM: stream.rate,
        PUBLISH: published.rate,
        CONSUME: consumed.rate,
        INSERT: inserted.rate,
    }
    streamed = {"streams": mode.streams, "items": mode.streams * mode.stream_items}
    return values, [
        Figure(f"{UNARY} ({callers} callers)", unary.rate, "/s", conditions={"callers": callers})
        .spent(unary_cpu, unary.completed),
        Figure(STREAM, stream.rate, "items/s", conditions=streamed)
        .spent(stream_cpu, stream.completed),
        # One window for both: each message is published, then consumed.
        Figure(PUBLISH, published.rate, "/s", conditions={"messages": mode.queue_messages})
        .spent(queue_cpu, published.completed),
        Figure(CONSUME, consumed.rate, "/s", conditions={"messages": mode.queue_messages}),
        Figure(INSERT, inserted.rate, "docs/s", conditions={"documents": mode.insert_documents})
        .spent(insert_cpu, inserted.completed),
        Figure(INSERT_INDEXED, indexed.rate, "docs/s", conditions={"documents": indexed_documents})
        .spent(indexed_cpu, indexed.completed),
    ]  # fmt: skip
