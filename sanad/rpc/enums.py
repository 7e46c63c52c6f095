"""Protobuf enum numbers read as the domain's names: one reading for every transport."""

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper


def enum_suffix(enum: EnumTypeWrapper, value: int, prefix: str) -> str:
    """'COUNTER' for CHANNEL_COUNTER; '' for the unspecified value and for a number this
    version does not know (a newer client's), which the caller refuses or defaults."""
    try:
        name = enum.Name(value)
    except ValueError:
        return ""
    suffix = name.removeprefix(prefix)
    return "" if suffix == "UNSPECIFIED" else suffix
