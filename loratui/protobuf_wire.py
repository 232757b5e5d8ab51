"""The few protobuf wire-format encoders loratui needs to write small messages by hand.

Two writers use them: the demo's tiny ONNX tagger (an ONNX model is a protobuf message) and the TensorBoard event
log (a TFRecord of ``Event`` messages). Writing the bytes here keeps ``onnx``, ``protobuf`` and ``tensorboard`` out
of the install; each writer's tests read the result back with the real library.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    # int64 fields encode negatives as their 64-bit two's complement (ten bytes).
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def key(field_number: int, wire_type: int) -> bytes:
    return varint((field_number << 3) | wire_type)


def varint_field(field_number: int, value: int) -> bytes:
    return key(field_number, VARINT) + varint(value)


def bytes_field(field_number: int, data: bytes) -> bytes:
    """A ``bytes`` field, or an embedded message (the same encoding)."""
    return key(field_number, LENGTH_DELIMITED) + varint(len(data)) + data


def string_field(field_number: int, text: str) -> bytes:
    return bytes_field(field_number, text.encode("utf-8"))


def double_field(field_number: int, value: float) -> bytes:
    return key(field_number, FIXED64) + struct.pack("<d", value)


def float_field(field_number: int, value: float) -> bytes:
    return key(field_number, FIXED32) + struct.pack("<f", value)
