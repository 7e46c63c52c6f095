"""Properties the client cannot decode reach the handler as markers instead of closing the
connection, and are left out of every copy the worker publishes.

This guards a patch of pamqp's decoder table (sanad.amqp.properties.install_lenient_decoding): it
fails when pamqp or aio-pika change what the patch relies on (pamqp.decode.METHODS read by
by_type for a content header's properties; aio-pika's IncomingMessage passing strings through
str() and keeping truthy headers), so a library upgrade cannot quietly bring back a message
that closes the worker's connection at every delivery.
"""

import struct
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import aio_pika
import pamqp.decode
import pamqp.frame
import pytest
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pamqp.header import ContentHeader

from sanad.amqp.copies import UNDECODABLE_HEADER, carried_headers, republished
from sanad.amqp.outcomes import undecodable
from sanad.amqp.properties import install_lenient_decoding

NOT_UTF8 = b"\xff\xfe"
NO_TIME = struct.pack(">Q", 2**63 - 1)  # milliseconds past the year 9999, as pamqp reads it


def table(key: bytes, value: bytes = b"S" + struct.pack(">I", 2) + b"ok") -> bytes:
    """A field table of one entry under key: a long string, or the typed value given."""
    entry = bytes([len(key)]) + key + value
    return struct.pack(">I", len(entry)) + entry


class RawProperties(spec.Basic.Properties):
    """Properties whose named values are sent as the given bytes (aio-pika would not build
    them): what any publisher can put on the wire."""

    def __init__(self, raw: dict[str, bytes], **values: Any) -> None:
        super().__init__(**values)
        self.raw = raw

    def encode_property(self, name: str, value: Any) -> bytes:
        if name in self.raw:
            return self.raw[name]
        return super().encode_property(name, value)  # type: ignore[no-any-return]


def poison_properties(**raw: bytes) -> RawProperties:
    """Properties with every field set, the named ones as raw bytes."""
    return RawProperties(
        raw,
        content_type="application/x-protobuf",
        headers={"x-trace": "t-1"},
        delivery_mode=2,
        correlation_id="c-1",
        reply_to="amq.gen-reply",
        message_id="m-1",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        message_type="sanad.v1.BatchSubmission",
        app_id="sender",
    )


def received(properties: spec.Basic.Properties) -> spec.Basic.Properties:
    """The properties as the client decodes them off the wire."""
    frame = pamqp.frame.marshal(ContentHeader(0, 6, properties), 1)
    _, _, header = pamqp.frame.unmarshal(frame)
    assert isinstance(header, ContentHeader)
    return header.properties


def incoming(properties: spec.Basic.Properties) -> aio_pika.IncomingMessage:
    delivered = DeliveredMessage(
        delivery=spec.Basic.Deliver(consumer_tag="c", delivery_tag=1, routing_key="q"),
        header=ContentHeader(0, 6, properties),
        body=b"batch",
        channel=None,  # type: ignore[arg-type]
    )
    return aio_pika.IncomingMessage(delivered)


@pytest.fixture(autouse=True)
def lenient() -> None:
    assert install_lenient_decoding()


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"timestamp": NO_TIME}, "timestamp"),
        ({"correlation_id": bytes([2]) + NOT_UTF8}, "correlation_id"),
        ({"reply_to": bytes([2]) + NOT_UTF8}, "reply_to"),
        ({"message_id": bytes([2]) + NOT_UTF8}, "message_id"),
        ({"message_type": bytes([2]) + NOT_UTF8}, "type"),
        ({"headers": table(NOT_UTF8)}, "headers"),
        ({"headers": table(b"x-sent-at", b"T" + NO_TIME)}, "headers"),
    ],
)
def test_an_undecodable_property_reaches_the_handler_as_an_undecodable_message(
    raw: dict[str, bytes], named: str
) -> None:
    message = incoming(received(poison_properties(**raw)))

    dead = undecodable(message)

    assert dead is not None
    assert dead.reason == "undecodable"
    assert dead.detail.startswith(f"AMQP properties the client cannot decode: {named} ")
    # Every other property is read as sent.
    assert message.app_id == "sender"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    if named != "headers":
        assert message.headers == {"x-trace": "t-1"}


def test_a_decodable_message_is_not_undecodable() -> None:
    message = incoming(received(poison_properties()))

    assert undecodable(message) is None
    assert (message.correlation_id, message.type) == ("c-1", "sanad.v1.BatchSubmission")
    assert message.timestamp == datetime(2026, 1, 1, tzinfo=UTC)


def test_the_copy_of_an_undecodable_message_goes_without_what_could_not_be_decoded() -> None:
    message = incoming(
        received(
            poison_properties(
                timestamp=NO_TIME,
                correlation_id=bytes([2]) + NOT_UTF8,
                headers=table(NOT_UTF8),
            )
        )
    )

    copy = republished(message, carried_headers(message, "sanad.batch.retry"))

    assert (copy.correlation_id, copy.timestamp) == (None, None)
    assert copy.message_id == "m-1"
    assert copy.headers == {
        UNDECODABLE_HEADER: "headers (not a field table), correlation_id b'\\xff\\xfe',"
        " timestamp (out of range)"
    }
    assert received(copy.properties).correlation_id is None  # it encodes


def test_a_frame_cut_short_is_still_refused() -> None:
    cut = struct.pack(">I", 10) + b"\x01"  # a table that says 10 bytes and holds 1
    with pytest.raises(ValueError, match="exceeds"):
        pamqp.decode.by_type(cut, "table")
    with pytest.raises(ValueError, match="timestamp"):
        pamqp.decode.by_type(b"\x00\x01", "timestamp")


def test_installing_again_changes_nothing_and_a_changed_pamqp_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = dict(pamqp.decode.METHODS)
    assert install_lenient_decoding()
    assert installed == pamqp.decode.METHODS

    monkeypatch.setitem(pamqp.decode.METHODS, "timestamp", lambda value: (8, None))
    assert not install_lenient_decoding()
    assert pamqp.decode.METHODS["shortstr"] is installed["shortstr"]


def test_pamqp_decodes_properties_with_the_table_the_patch_replaces() -> None:
    # What the patch relies on, named: if this fails, pamqp changed and the patch must be
    # looked at again (sanad.amqp.properties).
    assert version("pamqp") == "4.0.1", "pamqp changed: check install_lenient_decoding again"
    for name, original in (
        ("shortstr", pamqp.decode.short_str),
        ("timestamp", pamqp.decode.timestamp),
        ("table", pamqp.decode.field_table),
    ):
        assert getattr(pamqp.decode.METHODS[name], "_sanad_lenient", False)
        assert pamqp.decode.METHODS[name] is not original
