"""Hypothesis strategies building any protobuf request from its descriptor, boundaries included."""

from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
WORDS = ["", " ", "ROP", "MOCIIP", "DA", "DA-NIZ", "0", "-1", "../../etc", "$where", "{}", "٣٤٥"]
T = FieldDescriptor


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([low, high, 0, 1, max(low, -1)]), st.integers(low, high))


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    T.TYPE_STRING: st.one_of(st.sampled_from(WORDS), st.text(max_size=80), st.just("x" * 5000)),
    T.TYPE_BYTES: st.binary(max_size=64),
    T.TYPE_BOOL: st.booleans(),
    T.TYPE_INT32: _integers(*INT32),
    T.TYPE_SINT32: _integers(*INT32),
    T.TYPE_SFIXED32: _integers(*INT32),
    T.TYPE_INT64: _integers(*INT64),
    T.TYPE_SINT64: _integers(*INT64),
    T.TYPE_SFIXED64: _integers(*INT64),
    T.TYPE_UINT32: _integers(0, 2**32 - 1),
    T.TYPE_FIXED32: _integers(0, 2**32 - 1),
    T.TYPE_UINT64: _integers(0, 2**64 - 1),
    T.TYPE_FIXED64: _integers(0, 2**64 - 1),
    T.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    T.TYPE_FLOAT: st.floats(allow_nan=True, allow_infinity=True, width=32),
    T.TYPE_ENUM: st.integers(-3, 20),  # unknown values of open enums included
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    return _SCALARS[field.type]


def _timestamp(valid: bool) -> st.SearchStrategy[dict[str, int]]:
    if valid:
        return st.fixed_dictionaries(
            {
                "seconds": st.integers(-62135596800, 253402300799),
                "nanos": st.integers(0, 999_999_999),
            }
        )
    return st.fixed_dictionaries(
        {
            "seconds": st.one_of(
                st.sampled_from([0, -1, 253402300799, 253402300800, -62135596801]),
                st.integers(*INT64),
                st.integers(1_600_000_000, 1_900_000_000),
            ),
            "nanos": st.one_of(st.just(0), st.integers(*INT32)),
        }
    )


def fields(
    descriptor: Descriptor, depth: int = 0, valid_timestamps: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """Values for a random subset of a message's fields."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _timestamp(valid_timestamps)
    chosen: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == T.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                key = _scalar(field.message_type.fields_by_name["key"])
                value_field = field.message_type.fields_by_name["value"]
                if value_field.type == T.TYPE_MESSAGE:
                    continue
                value = st.dictionaries(key, _scalar(value_field), max_size=3)
            elif depth >= 3:
                continue
            else:
                value = fields(field.message_type, depth + 1, valid_timestamps)
        else:
            value = _scalar(field)
        if field.is_repeated and not (
            field.type == T.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
        ):
            value = st.lists(value, max_size=3)
        chosen[field.name] = value
    return st.fixed_dictionaries({}, optional=chosen)


def _fill(message: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.type == T.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            target.update(value)
        elif field.type == T.TYPE_MESSAGE and field.is_repeated:
            for item in value:
                _fill(target.add(), item)
        elif field.type == T.TYPE_MESSAGE:
            target.SetInParent()
            _fill(target, value)
        elif field.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)


def requests(descriptor: Descriptor, valid_timestamps: bool = False) -> st.SearchStrategy[Any]:
    """Requests of one message type with random and boundary values.

    valid_timestamps keeps Timestamps inside protobuf's range, for a service with a known gap.
    """
    cls = message_factory.GetMessageClass(descriptor)

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        _fill(message, values)
        return message

    return fields(descriptor, valid_timestamps=valid_timestamps).map(build)
