"""Dead-letter queues have no delivery limit: on RabbitMQ 4.0+ they are declared with -1 (its
default of 20 would drop a letter that passes failed to move that often), on 3.x without the
argument (3.x has no default, and drops a message at its first return under -1). One an
earlier release declared is kept as it is, with a warning, rather than failing the start."""

import logging
from typing import Any

import pytest
from aio_pika.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from sanad.amqp import topology
from sanad.amqp.topology import UNLIMITED_DELIVERIES, Topology

PLAIN = {"x-queue-type": "quorum"}
UNLIMITED = {"x-queue-type": "quorum", "x-delivery-limit": UNLIMITED_DELIVERIES}


@pytest.mark.parametrize(
    ("version", "arguments"),
    [("4.1.0", UNLIMITED), ("4.0.0-rc.1", UNLIMITED), ("3.10.8", PLAIN), ("", PLAIN)],
)
def test_a_dead_letter_queue_has_no_delivery_limit_on_any_broker(
    version: str, arguments: dict[str, Any]
) -> None:
    assert Topology("p").dead_queue_arguments(version) == arguments


class Broker:
    """Durable queues by name with their arguments, as a declaration finds them."""

    def __init__(self, queues: dict[str, dict[str, Any]], version: str) -> None:
        self.queues = queues
        self.server_properties = {"version": version.encode()}

    async def channel(self, **_: Any) -> "AsideChannel":
        return AsideChannel(self)


class AsideChannel:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.is_closed = False

    async def queue_declare(
        self, name: str, passive: bool = False, arguments: dict[str, Any] | None = None, **_: Any
    ) -> None:
        found = self.broker.queues.get(name)
        if found is None and passive:
            raise ChannelNotFoundEntity(name)
        if found is not None and not passive and found != arguments:
            self.is_closed = True
            raise ChannelPreconditionFailed(f"inequivalent arguments for {name}")
        if found is None:
            self.broker.queues[name] = dict(arguments or {})

    async def close(self) -> None:
        self.is_closed = True


class Channel:
    """The caller's channel: records what it was finally asked to declare."""

    def __init__(self, broker: Broker) -> None:
        self.connection = broker
        self.declared: dict[str, dict[str, Any]] = {}

    async def get_underlay_channel(self) -> "Channel":
        return self

    async def declare_queue(self, name: str, arguments: dict[str, Any], **_: Any) -> None:
        self.declared[name] = arguments


async def declared(queues: dict[str, dict[str, Any]], version: str) -> dict[str, Any]:
    channel = Channel(Broker(queues, version))
    arguments = Topology("p").dead_queue_arguments(await topology._server_version(channel))  # type: ignore[arg-type]
    await topology._declare_dead_queue(channel, "p.ingest.dead", arguments)  # type: ignore[arg-type]
    return channel.declared["p.ingest.dead"]


async def test_a_new_dead_letter_queue_on_rabbitmq_4_is_declared_without_a_limit() -> None:
    assert await declared({}, "4.1.0") == UNLIMITED


async def test_a_dead_letter_queue_of_an_earlier_release_is_kept_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sanad.amqp.topology"):
        assert await declared({"p.ingest.dead": dict(PLAIN)}, "4.1.0") == PLAIN

    assert "queue p.ingest.dead keeps RabbitMQ's default delivery limit" in caplog.text


async def test_a_dead_letter_queue_with_other_arguments_still_fails_the_start() -> None:
    other = {"x-queue-type": "classic"}
    with pytest.raises(ChannelPreconditionFailed):
        await declared({"p.ingest.dead": other}, "4.1.0")


async def test_a_dead_letter_queue_on_rabbitmq_3_is_declared_as_before() -> None:
    assert await declared({"p.ingest.dead": dict(PLAIN)}, "3.10.8") == PLAIN
