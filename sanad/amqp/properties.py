"""Properties of a delivery the client cannot decode, read as markers instead.

pamqp decodes a delivery's properties inside aiormq's
frame reader, where an error closes the whole connection: a `timestamp` past the year 9999
(2**63-1, say), a short string (correlation_id, reply_to, message_id, type...) that is not
UTF-8, or a headers table that holds either (or a key that is not UTF-8). Any submitter can
publish one, and the broker passes it on. The message and every other one held under
prefetch then came back at each reconnect, every return counting toward the queue's delivery
limit, until the broker dead-lettered them all, good ones too, without a reason.

install_lenient_decoding() wraps three entries of pamqp's decoder table (pamqp.decode.METHODS,
which pamqp.decode.by_type reads at each call: pamqp 4.0.1, pinned): where the original raises
on a value whose length is known, the wrapper returns the bytes it takes and a marker in its
place. The markers survive aio-pika's IncomingMessage (which passes strings through str() and
replaces falsy headers with {}), so a handler sees them: sanad.amqp.outcomes.undecodable()
dead-letters the message naming them, and copies.republished() leaves them off its copies.
tests/unit/test_amqp_lenient_decoding.py fails when pamqp or aio-pika change what this relies
on.
"""

import logging
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pamqp import decode

log = logging.getLogger("sanad.amqp.consumer")


class UndecodableText(str):
    """In place of a short string that is not UTF-8: its bytes backslash-escaped, and `raw`."""

    raw: bytes

    def __new__(cls, raw: bytes) -> "UndecodableText":
        text = super().__new__(cls, raw.decode("utf-8", "backslashreplace"))
        text.raw = raw
        return text

    def __str__(self) -> str:
        return self  # aio-pika's str() of a property keeps the marker


class UndecodableTime(datetime):
    """In place of a timestamp no datetime holds; the year 1, so that it never encodes."""


class UndecodableTable(dict[str, Any]):
    """In place of a field table (the headers) that cannot be decoded; it reads as empty."""

    def __bool__(self) -> bool:
        return True  # aio-pika replaces falsy headers with {}: keep the marker


_MARKERS = (UndecodableText, UndecodableTime, UndecodableTable)
# The properties of a delivery, by their aio-pika names (delivery_mode and priority are octets:
# every byte decodes; expiration the broker checks is a number).
_PROPERTIES = (
    "content_type",
    "content_encoding",
    "headers",
    "correlation_id",
    "reply_to",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)
_LENIENT = "_sanad_lenient"


def install_lenient_decoding() -> bool:
    """Have pamqp decode what it cannot decode as markers (see above); once per process, before
    connecting; repeating it changes nothing. False, logged, when pamqp is not as expected:
    then nothing is changed, and such messages close the connection again."""
    methods = decode.METHODS
    wrapped = {
        "shortstr": (decode.short_str, _lenient_short_str),
        "timestamp": (decode.timestamp, _lenient_timestamp),
        "table": (decode.field_table, _lenient_table),
    }
    for name, (original, _) in wrapped.items():
        current = methods.get(name)
        if current is not original and not getattr(current, _LENIENT, False):
            log.error("pamqp's %s decoder is not the one expected; leaving pamqp as it is", name)
            return False
    for name, (original, wrapper) in wrapped.items():
        if methods[name] is original:
            lenient = wrapper(original)
            setattr(lenient, _LENIENT, True)
            methods[name] = lenient
    return True


Decoder = Callable[[bytes], tuple[int, Any]]


def _lenient_short_str(original: Decoder) -> Decoder:
    def short_str(value: bytes) -> tuple[int, Any]:
        try:
            return original(value)
        except UnicodeDecodeError:
            end = 1 + value[0]
            return end, UndecodableText(value[1:end])

    return short_str


def _lenient_timestamp(original: Decoder) -> Decoder:
    def timestamp(value: bytes) -> tuple[int, Any]:
        try:
            return original(value)
        except (ValueError, OverflowError, OSError):
            if len(value) < 8:  # a frame cut short: pamqp's own error
                raise
            return 8, UndecodableTime(1, 1, 1, tzinfo=UTC)

    return timestamp


def _lenient_table(original: Decoder) -> Decoder:
    def field_table(value: bytes) -> tuple[int, Any]:
        try:
            return original(value)
        except (ValueError, OverflowError, OSError):
            if len(value) < 4 or (end := 4 + struct.unpack(">I", value[:4])[0]) > len(value):
                raise  # a frame cut short: pamqp's own error
            return end, UndecodableTable()

    return field_table


def undecodable_properties(message: AbstractIncomingMessage) -> dict[str, str]:
    """The properties of message the client could not decode, each as far as it is shown."""
    found = {}
    for name in _PROPERTIES:
        value = getattr(message, name, None)
        if isinstance(value, UndecodableText):
            found[name] = repr(value.raw[:64])
        elif isinstance(value, UndecodableTime):
            found[name] = "(out of range)"
        elif isinstance(value, UndecodableTable):
            found[name] = "(not a field table)"
    return found


def shown(found: dict[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in found.items())


def decoded(value: Any) -> Any:
    """value, or None in place of a marker."""
    return None if isinstance(value, _MARKERS) else value
