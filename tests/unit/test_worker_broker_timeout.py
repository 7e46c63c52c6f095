"""Both workers bound their waits on the broker by the deployable's SANAD_AMQP_TIMEOUT_S."""

from workers.batch.app import build_app as build_batch
from workers.batch.settings import BatchSettings
from workers.ingest.app import build_app as build_ingest
from workers.ingest.settings import IngestSettings


async def test_the_ingest_worker_waits_on_the_broker_as_long_as_its_setting_says() -> None:
    app = build_ingest(IngestSettings(amqp_timeout_s=7.5))
    try:
        assert app.consumer.options.broker_timeout_s == 7.5
    finally:
        await app.client.close()


async def test_the_batch_worker_waits_on_the_broker_as_long_as_its_setting_says() -> None:
    app = build_batch(BatchSettings(amqp_timeout_s=7.5))
    try:
        assert app.consumer.options.broker_timeout_s == 7.5
    finally:
        await app.close()
