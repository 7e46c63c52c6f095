"""Protobuf's wire format read without parsing a message: its fields one by one, so a bound on
how many a message holds is checked before a parse costs memory in proportion to them (an
empty item takes 2 bytes on the wire and about 100 once parsed)."""

from collections.abc import Iterator

from google.protobuf.message import DecodeError

# Protobuf's wire types (groups, 3 and 4, are refused: our messages hold none).
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def wire_fields(body: memoryview) -> Iterator[tuple[int, int, int | None, int]]:
    """Each field of a message's wire format: its number, where it starts, where a
    length-delimited field's value starts (None for other wire types), and where it ends."""
    at = 0
    while at < len(body):
        start = at
        key, at = varint(body, at)
        field, wire_type = key >> 3, key & 7
        value_at = None
        if wire_type == VARINT:
            _, at = varint(body, at)
        elif wire_type == FIXED64:
            at += 8
        elif wire_type == LENGTH_DELIMITED:
            length, at = varint(body, at)
            value_at, at = at, at + length
        elif wire_type == FIXED32:
            at += 4
        else:
            raise DecodeError(f"wire type {wire_type} of field {field}")
        if at > len(body):
            raise DecodeError("truncated message")
        yield field, start, value_at, at


def varint(body: memoryview, at: int) -> tuple[int, int]:
    """The varint at `at` and where it ends; DecodeError for one cut short or over 64 bits."""
    value, shift = 0, 0
    while at < len(body) and shift < 64:
        byte = body[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise DecodeError("truncated or overlong varint")
