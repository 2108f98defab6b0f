"""Assembling one publish from its basic.publish method, content header and content body frames.

Why: AMQP splits a message over several frames that may interleave with nothing else on the channel.
Keeping the half-received publish here gives the channel one question to ask ("is a publish complete?")
and keeps the frame-order errors (505) and RabbitMQ's max_message_size refusal (406) in one place.
"""

from __future__ import annotations

from typing import NamedTuple

from . import errors, frames
from .profiles import MAX_MESSAGE_SIZE


class Content(NamedTuple):
    """A complete publish: where it goes and the raw content header and body the client sent."""

    exchange: str
    routing_key: str
    mandatory: bool
    header: bytes
    body: bytes


class ContentAssembler:
    """The publish a channel is receiving: its method, then its header, then its body frames.

    A message larger than ``max_message_size`` has its body frames counted and dropped as they arrive
    (memory stays bounded), and is refused once its last frame is in, as RabbitMQ does.
    """

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._publish: tuple[str, str, bool] | None = None  # exchange, routing key, mandatory
        self._header: bytes | None = None
        self.body_frames: list[bytes] = []  # the frames of a body that spans several
        self._remaining = 0  # body bytes the header announced and have not arrived yet
        self._oversized = 0  # size of a publish being discarded because it exceeds max_message_size

    @property
    def receiving(self) -> bool:
        """A basic.publish has arrived and its content is not complete yet."""
        return self._publish is not None

    def start(self, payload: bytes) -> None:
        """A basic.publish method frame: its content frames follow."""
        self._publish = frames.decode_publish(payload)

    def header(self, payload: bytes) -> Content | None:
        """A content header frame; the complete publish if its body is empty."""
        if self._publish is None or self._header is not None:
            raise errors.UnexpectedFrame("unexpected content header frame", method=(60, 40))
        size = frames.header_body_size(payload)
        self._header = payload
        self._remaining = size
        if size > self.max_message_size:
            self._oversized = size  # its body is counted and dropped, not buffered
        if size == 0:
            return self._complete(b"")
        return None

    def body(self, payload: bytes) -> Content | None:
        """A content body frame; the complete publish once its last body frame is in."""
        if self._header is None:
            raise errors.UnexpectedFrame("unexpected content body frame", method=(60, 40))
        self._remaining -= len(payload)
        if self._remaining < 0:
            raise errors.FrameError("content body larger than announced in the content header", method=(60, 40))
        if self._oversized:
            if self._remaining == 0:
                self._refuse_oversized()
            return None
        if self._remaining:
            self.body_frames.append(payload)
            return None
        if self.body_frames:
            self.body_frames.append(payload)
            body = b"".join(self.body_frames)
            self.body_frames = []
        else:
            body = payload
        return self._complete(body)

    def _refuse_oversized(self) -> None:
        """RabbitMQ checks max_message_size once the whole message has arrived (rabbit_channel.erl,
        check_msg_size), so the 406 comes after the last body frame, as there."""
        size, self._oversized = self._oversized, 0
        self._publish = self._header = None
        limit = self.max_message_size
        which = "max size" if limit == MAX_MESSAGE_SIZE else "configured max size"
        raise errors.PreconditionFailed(f"message size {size} is larger than {which} {limit}", method=(60, 40))

    def _complete(self, body: bytes) -> Content:
        publish, header = self._publish, self._header
        assert publish is not None and header is not None  # start and header set both before
        self._publish = self._header = None
        return Content(*publish, header, body)
