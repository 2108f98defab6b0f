"""AMQP 0-9-1 reply codes as exceptions.

Why: a protocol handler deep inside routing or queue code must be able to say "this is a 406 on this
channel" or "this is a 501 on this connection" without knowing how the close is sent. The channel and
connection state machines catch these and turn them into Channel.Close / Connection.Close frames with
the reply text format RabbitMQ uses ("NOT_FOUND - no queue 'q' in vhost '/'").
"""

from __future__ import annotations


class AMQPError(Exception):
    """A protocol error with its reply code; ``method`` is the (class_id, method_id) that caused it."""

    code = 541
    label = "INTERNAL_ERROR"

    def __init__(self, text: str, method: tuple[int, int] = (0, 0)) -> None:
        super().__init__(text)
        self.text = text
        self.method = method

    @property
    def reply_text(self) -> str:
        """``LABEL - text``, cut like RabbitMQ cuts it: over 255 characters, the first 252 and "..."."""
        text = f"{self.label} - {self.text}"
        return text if len(text) <= 255 else text[:252] + "..."


class ChannelError(AMQPError):
    """Closes only the channel it happened on."""


class ConnectionError(AMQPError):
    """Closes the whole connection."""


class AccessRefused(ChannelError):
    code, label = 403, "ACCESS_REFUSED"


class NotFound(ChannelError):
    code, label = 404, "NOT_FOUND"


class ResourceLocked(ChannelError):
    code, label = 405, "RESOURCE_LOCKED"


class PreconditionFailed(ChannelError):
    code, label = 406, "PRECONDITION_FAILED"


class ConnectionRefused(ConnectionError):
    """403 at connection level: wrong credentials."""

    code, label = 403, "ACCESS_REFUSED"


class ConnectionForced(ConnectionError):
    code, label = 320, "CONNECTION_FORCED"


class FrameError(ConnectionError):
    code, label = 501, "FRAME_ERROR"


class CommandInvalid(ConnectionError):
    code, label = 503, "COMMAND_INVALID"


class InternalError(ConnectionError):
    """541 INTERNAL_ERROR: RabbitMQ 4.3 refuses a denied deprecated feature with it (closing the connection)."""

    code, label = 541, "INTERNAL_ERROR"


class ChannelMisuse(ConnectionError):
    """504 CHANNEL_ERROR: a frame for a channel that is not open, or a second channel.open."""

    code, label = 504, "CHANNEL_ERROR"


class UnexpectedFrame(ConnectionError):
    code, label = 505, "UNEXPECTED_FRAME"


class NotAllowed(ConnectionError):
    code, label = 530, "NOT_ALLOWED"


class NotImplementedFeature(ConnectionError):
    code, label = 540, "NOT_IMPLEMENTED"
