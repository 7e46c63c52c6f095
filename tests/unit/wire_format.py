"""Protobuf's wire format by hand, for bodies protobuf itself would not build."""


def varint(value: int) -> bytes:
    """value as a base-128 varint; a negative one as its 64-bit two's complement, as protobuf
    writes an int64."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
