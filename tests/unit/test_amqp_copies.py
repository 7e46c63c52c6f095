"""The copies a worker publishes of a message it took encode, whatever the message held."""

import aio_pika
import pamqp.frame
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pamqp.header import ContentHeader

from sanad.amqp.copies import carried_headers, republished
from sanad.amqp.verdicts import Dead, Part
from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE


def incoming(body: bytes) -> aio_pika.IncomingMessage:
    properties = spec.Basic.Properties(
        message_type=SUBMITTED_PACK_TYPE, message_id="T1", user_id="intake"
    )
    delivered = DeliveredMessage(
        delivery=spec.Basic.Deliver(consumer_tag="c", delivery_tag=1, routing_key="q"),
        header=ContentHeader(0, len(body), properties),
        body=body,
        channel=None,  # type: ignore[arg-type]
    )
    return aio_pika.IncomingMessage(delivered)


def encoded(copy: aio_pika.Message) -> bytes:
    """The copy's properties on the wire, as the client publishes them."""
    return bytes(pamqp.frame.marshal(ContentHeader(0, len(copy.body), copy.properties), 1))


def test_a_pack_item_whose_id_is_too_long_for_a_message_id_is_copied_without_one() -> None:
    # A forged pack's poison item named by a transaction id of more than 255 bytes (300 Latin
    # letters, or 100 Arabic ones within the 128-character bound on codes): the client refused
    # to encode its dead letter, the consumer failed at every redelivery and held the queue
    # (fuzz helper).
    message = incoming(b"pack")
    for long_id in ("T" * 300, "\u0628" * 128):
        part = Part(b"item", Dead("invalid", "missing fields: submit_time"), long_id)

        copy = republished(message, carried_headers(message, "q.retry"), part=part,
                           part_type=SUBMITTED_TYPE)  # fmt: skip

        assert copy.message_id is None
        assert copy.body == b"item"
        assert encoded(copy)


def test_a_pack_item_keeps_an_id_that_fits_as_its_message_id() -> None:
    message = incoming(b"pack")
    part = Part(b"item", Dead("invalid", "missing fields: submit_time"), "\u0628" * 127)

    copy = republished(message, {}, part=part, part_type=SUBMITTED_TYPE)

    assert copy.message_id == "\u0628" * 127
    assert encoded(copy)
