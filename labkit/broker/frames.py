"""Stream framing for AMQP 0-9-1: split the TCP byte stream into frames and build outgoing frames.

Why: pamqp marshals methods and properties but leaves stream framing to the caller (and accepts
protocol headers and frame sizes a server must reject). This module does the framing itself, with a
lean hot path: Basic.Publish is decoded by hand, content headers travel as raw bytes, outgoing
Basic.Deliver frames are packed directly and bodies are split by the negotiated frame_max.
"""

from __future__ import annotations

import struct

from pamqp import commands
from pamqp import frame as pframe
from pamqp.exceptions import UnmarshalingException

from . import errors

METHOD, HEADER, BODY, HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"
FRAME_MIN_SIZE = 4096

_HEAD = struct.Struct(">BHI")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_DELIVER_HEAD = struct.Struct(">BHIHH")
PUBLISH_ID = b"\x00\x3c\x00\x28"  # Basic (60) . Publish (40)
ACK_ID = b"\x00\x3c\x00\x50"  # Basic (60) . Ack (80)
_ACK = struct.Struct(">QB")
_END = b"\xce"


class FrameReader:
    """Incremental parser: feed bytes, get back complete ``(type, channel, payload)`` frames."""

    __slots__ = ("_buf", "frame_max")

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self._buf = bytearray()
        self.frame_max = frame_max

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Return the frames completed by ``data``; raise FrameError on a malformed frame."""
        if self._buf:  # a partial frame is pending: parse from the joined buffer
            self._buf += data
            data = bytes(self._buf)
            self._buf = bytearray()
        frames = []
        pos, size = 0, len(data)
        limit = self.frame_max
        unpack = _HEAD.unpack_from
        while size - pos >= 7:
            ftype, channel, length = unpack(data, pos)
            if limit and length + 8 > limit:
                raise errors.FrameError(f"frame size {length + 8} exceeds frame_max {limit}")
            end = pos + 7 + length
            if end >= size:
                break
            if data[end] != FRAME_END:
                raise errors.FrameError(f"frame end byte 0x{data[end]:02x} is not 0xce")
            frames.append((ftype, channel, data[pos + 7 : end]))
            pos = end + 1
        if pos < size:
            self._buf += data[pos:]
        return frames


def decode_method(payload: bytes) -> commands.base.Frame:
    """Unmarshal a method payload with pamqp; unknown or malformed methods are a FRAME_ERROR."""
    if len(payload) < 4:
        raise errors.FrameError("method frame shorter than its class and method ids")
    try:
        return pframe._unmarshal_method_frame(payload)
    except (UnmarshalingException, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise errors.FrameError(f"cannot decode method: {exc}") from None


_NAMES: dict[bytes, str] = {}
_NAMES_LIMIT = 10_000


def _name(raw: bytes) -> str:
    """Decode an exchange/routing-key name, sharing one str per distinct name (100k stored messages
    with the same routing key then hold one string, not 100k copies)."""
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode()
        if len(_NAMES) >= _NAMES_LIMIT:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


def decode_publish(payload: bytes) -> tuple[str, str, bool]:
    """Decode Basic.Publish by hand (the hot path): (exchange, routing_key, mandatory).

    immediate=true is refused with 540 like RabbitMQ 3.x."""
    try:
        n = payload[6]
        exchange = _name(payload[7 : 7 + n])
        pos = 7 + n
        m = payload[pos]
        routing_key = _name(payload[pos + 1 : pos + 1 + m])
        bits = payload[pos + 1 + m]
    except (IndexError, UnicodeDecodeError) as exc:
        raise errors.FrameError(f"malformed basic.publish: {exc}") from None
    if bits & 2:
        raise errors.NotImplementedFeature("immediate=true", method=(60, 40))
    return exchange, routing_key, bool(bits & 1)


def decode_ack(payload: bytes) -> tuple[int, bool]:
    """Decode Basic.Ack by hand (the consume hot path): (delivery_tag, multiple)."""
    if len(payload) != 13:
        raise errors.FrameError("malformed basic.ack")
    tag, bits = _ACK.unpack_from(payload, 4)
    return tag, bool(bits & 1)


def header_body_size(payload: bytes) -> int:
    """Body size announced by a content-header payload."""
    if len(payload) < 14:
        raise errors.FrameError("content header too short")
    size: int = _U64.unpack_from(payload, 4)[0]
    return size


_ACK_FRAME = struct.Struct(">BHIHHQBB")


def ack_frame(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """Basic.Ack packed directly: with confirm-each publishing it is sent once per message."""
    return _ACK_FRAME.pack(METHOD, channel, 13, 60, 80, delivery_tag, multiple, FRAME_END)


def method_frame(channel: int, method: commands.base.Frame) -> bytes:
    return pframe.marshal(method, channel)


def _shortstr(value: str) -> bytes:
    raw = value.encode()
    return bytes((len(raw),)) + raw


def content_frames(channel: int, header: bytes, body: bytes, frame_max: int) -> list[bytes]:
    """Content header frame plus body frames, each at most ``frame_max`` bytes on the wire."""
    out = [_HEAD.pack(HEADER, channel, len(header)), header, _END]
    step = frame_max - 8
    if len(body) <= step:
        if body:
            out += (_HEAD.pack(BODY, channel, len(body)), body, _END)
        return out
    view = memoryview(body)
    for start in range(0, len(body), step):
        chunk = view[start : start + step]
        out += (_HEAD.pack(BODY, channel, len(chunk)), bytes(chunk), _END)
    return out


def delivery_frames(
    channel: int,
    class_method: tuple[int, int],
    fields: bytes,
    header: bytes,
    body: bytes,
    frame_max: int,
) -> list[bytes]:
    """A Basic.Deliver / GetOk / Return method frame (``fields`` pre-packed) plus its content."""
    head = _DELIVER_HEAD.pack(METHOD, channel, len(fields) + 4, *class_method)
    return [head, fields, _END, *content_frames(channel, header, body, frame_max)]


def deliver_fields(consumer_tag: bytes, delivery_tag: int, redelivered: bool, exchange: str, routing_key: str) -> bytes:
    """Basic.Deliver arguments; ``consumer_tag`` is the pre-encoded shortstr."""
    return b"".join(
        (
            consumer_tag,
            _U64.pack(delivery_tag),
            b"\x01" if redelivered else b"\x00",
            _shortstr(exchange),
            _shortstr(routing_key),
        )
    )


def get_ok_fields(delivery_tag: int, redelivered: bool, exchange: str, routing_key: str, message_count: int) -> bytes:
    return b"".join(
        (
            _U64.pack(delivery_tag),
            b"\x01" if redelivered else b"\x00",
            _shortstr(exchange),
            _shortstr(routing_key),
            struct.pack(">I", message_count),
        )
    )


def return_fields(reply_code: int, reply_text: str, exchange: str, routing_key: str) -> bytes:
    return b"".join((_U16.pack(reply_code), _shortstr(reply_text), _shortstr(exchange), _shortstr(routing_key)))


def shortstr(value: str) -> bytes:
    """Pre-encode a shortstr (consumer tags are encoded once per consumer)."""
    return _shortstr(value)


DELIVER = (60, 60)
GET_OK = (60, 71)
RETURN = (60, 50)
