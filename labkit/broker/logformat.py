"""The byte layout of the durability log (store.py): how records are framed, encoded and decoded.

Why a module of its own: the writer, recovery and compaction must agree on every byte, and a record cut
short by a crash (kill -9 in the middle of a write) must be recognised as such, so the layout is written
down once. Each record is ``[length u32][crc32 u32][payload]``; a payload starts with its kind:

- ``M`` a message: id u64, queue, exchange and routing key (shortstrs), content header (u32 length and
  the bytes), body;
- ``G`` a message gone for good: id u64, queue;
- ``T`` a change of the durable topology: an AMQP field table (topology.py).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

from pamqp import decode, encode

from .message import Message

FRAME = struct.Struct(">II")  # payload length, crc32 of the payload
_ID = struct.Struct(">Q")
U32 = struct.Struct(">I")
MESSAGE, GONE, TOPOLOGY = b"M", b"G", b"T"


def _shortstr(value: str) -> bytes:
    raw = value.encode()
    return bytes((len(raw),)) + raw


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def message_payload(mid: int, queue: str, msg: Message) -> bytes:
    return b"".join(
        (
            MESSAGE,
            _ID.pack(mid),
            _shortstr(queue),
            _shortstr(msg.exchange),
            _shortstr(msg.routing_key),
            U32.pack(len(msg.header)),
            msg.header,
            msg.body,
        )
    )


def gone_payload(mid: int, queue: str) -> bytes:
    return GONE + _ID.pack(mid) + _shortstr(queue)


def topology_payload(record: dict[str, Any]) -> bytes:
    return TOPOLOGY + encode.field_table(record)


def scan(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, length) of each whole payload in ``data``, in order, up to the first record that is cut
    short or fails its CRC check (what follows it is a torn tail)."""
    view = memoryview(data)
    at, end = 0, len(data)
    while at + FRAME.size <= end:
        length, crc = FRAME.unpack_from(data, at)
        start = at + FRAME.size
        if start + length > end or zlib.crc32(view[start : start + length]) != crc or not length:
            return
        yield start, length
        at = start + length


def message_key(data: bytes, start: int) -> tuple[int, str]:
    """The id and queue of the message or gone payload at ``start``."""
    mid: int = _ID.unpack_from(data, start + 1)[0]
    at = start + 1 + _ID.size
    n = data[at]
    return mid, data[at + 1 : at + 1 + n].decode()


def topology_record(data: bytes, start: int, length: int) -> dict[str, Any]:
    _, record = decode.field_table(data[start + 1 : start + length])
    return record


def message(data: bytes, offset: int) -> Message:
    """Decode the message record framed at ``offset`` (inlined field reads: recovery decodes every live
    message)."""
    end = offset + FRAME.size + U32.unpack_from(data, offset)[0]
    at = offset + FRAME.size + 1 + _ID.size
    at += 1 + data[at]  # the queue name (the caller knows it)
    n = data[at]
    exchange = data[at + 1 : at + 1 + n].decode()
    at += 1 + n
    n = data[at]
    routing_key = data[at + 1 : at + 1 + n].decode()
    at += 1 + n
    header_end = at + U32.size + U32.unpack_from(data, at)[0]
    return Message(exchange, routing_key, data[at + U32.size : header_end], data[header_end:end])
