"""The opening handshake of an AMQP 0-9-1 connection: its states, what the broker offers in
connection.start and connection.tune, and what it accepts in start-ok and tune-ok.

Why a module of its own: these are RabbitMQ's rules (its capability set, PLAIN and AMQPLAIN, the bounds
of frame_max, the smaller channel_max winning, the text of a refused login) and they change with it,
not with how frames are read or written; connection.py is the state machine that applies them.
"""

from __future__ import annotations

import enum
import platform
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames

if TYPE_CHECKING:  # pragma: no cover
    from .server import Broker


class ConnectionState(enum.IntEnum):
    """The phases of a connection, in order: ``state < RUNNING`` means the handshake is not complete."""

    HEADER = 0  # waiting for the 8-byte protocol header
    START = 1  # connection.start sent, waiting for start-ok (authentication)
    TUNE = 2  # connection.tune sent, waiting for tune-ok
    OPEN = 3  # tuned, waiting for connection.open (the vhost)
    RUNNING = 4  # open: channels may be used
    CLOSING = 5  # the broker sent connection.close and waits for close-ok (or CLOSE_OK_TIMEOUT)
    CLOSED = 6  # the socket is closed or closing; channels released


HEADER, START, TUNE, OPEN, RUNNING, CLOSING, CLOSED = ConnectionState
# Which state may follow which: the handshake goes forward one step at a time, any state may close.
CONNECTION_TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    HEADER: frozenset({START, CLOSED}),
    START: frozenset({TUNE, CLOSING, CLOSED}),
    TUNE: frozenset({OPEN, CLOSING, CLOSED}),
    OPEN: frozenset({RUNNING, CLOSING, CLOSED}),
    RUNNING: frozenset({CLOSING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}
CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


def server_properties(cluster_name: str, version: str) -> dict[str, Any]:
    """What connection.start advertises: RabbitMQ's capability set, so clients enable the same features,
    and the version of the RabbitMQ release the broker's profile behaves like."""
    return {
        "product": "labkit.broker",
        "version": version,
        "platform": f"Python {platform.python_version()}",
        "cluster_name": cluster_name,
        "copyright": "labkit",
        "information": "embedded AMQP 0-9-1 broker for the course",
        "capabilities": dict(CAPABILITIES),
    }


def start(broker: Broker) -> spec.Connection.Start:
    """The broker's first method, once the client's protocol header is right."""
    return spec.Connection.Start(
        0,
        9,
        server_properties=server_properties(broker.cluster_name, broker.profile.version),
        mechanisms="PLAIN AMQPLAIN",
        locales="en_US",
    )


def login_refused(mechanism: str) -> errors.ConnectionRefused:
    """RabbitMQ's 403 for bad credentials (sent only to clients with authentication_failure_close)."""
    return errors.ConnectionRefused(
        f"Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.",
        method=(10, 11),
    )


def tune(broker: Broker) -> spec.Connection.Tune:
    return spec.Connection.Tune(broker.channel_max, broker.frame_max, broker.heartbeat)


def tuned(broker: Broker, method: spec.Connection.TuneOk) -> tuple[int, int, int]:
    """The frame_max, channel_max and heartbeat period a client's tune-ok settles on (0 = the broker's
    offer for the first two); a frame_max outside what the broker offered closes the connection."""
    frame_max = method.frame_max or broker.frame_max
    if frame_max < frames.FRAME_MIN_SIZE or frame_max > broker.frame_max:
        raise errors.NotAllowed(
            f"negotiated frame_max = {frame_max} is outside [{frames.FRAME_MIN_SIZE}, {broker.frame_max}]",
            method=(10, 31),
        )
    return frame_max, min(method.channel_max or broker.channel_max, broker.channel_max), method.heartbeat
