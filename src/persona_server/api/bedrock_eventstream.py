"""AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's streams use it.

A message is a prelude (total length, headers length: 4-byte big-endian each), the prelude's CRC32, the headers,
the payload, and the CRC32 of everything before it. A header is its name's length (1 byte), the name, a value
type (7: string), the value's length (2 bytes) and the value. We only ever write string headers.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

MEDIA_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    head = _headers(headers)
    prelude = _PRELUDE.pack(12 + len(head) + len(payload) + 4, len(head))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + head + payload
    return message + _CRC.pack(zlib.crc32(message))


def event(event_type: str, data: Any) -> bytes:
    """An event of a Bedrock stream: `:event-type` names the member of the stream's union, the payload its JSON."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(data),
    )


def exception(exception_type: str, message: str) -> bytes:
    """An error inside a stream (after the 200 has gone out): botocore raises it as an EventStreamError."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        orjson.dumps({"message": message}),
    )
