"""``Broker``: the embedded AMQP 0-9-1 server object a lab starts, inspects, resets and stops.

Why: experiments need a broker they own (start on an ephemeral port, read queue depths and rates,
reset state between runs, stop without leaking sockets or timers) with the same wire behaviour the
course shows on RabbitMQ. It listens on loopback only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any
from urllib.parse import quote

from .. import _validate as v
from . import errors, frames, profiles
from .auth import Auth
from .connection import Connection
from .durable_topology import restore
from .flow import MemoryAlarm
from .store import Store
from .tap import Tap
from .vhost import VHost

STOP_GRACE = 1.0  # seconds clients get to answer connection.close on stop()
RATE_WINDOW = 5.0  # seconds over which queues() averages rates


def _loopback(host: str) -> str:
    """Only loopback addresses: the lab never exposes a broker on the network."""
    if not isinstance(host, str):
        raise ValueError(f"host must be a loopback address such as '127.0.0.1', got {host!r}")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        ok = bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"host must be a loopback address such as '127.0.0.1', got {host!r}")
    return host


class Broker:
    """An AMQP 0-9-1 broker on the running event loop: ``await Broker().start()``, ``.url``, ``await .stop()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = "guest",
        password: str = "guest",
        heartbeat: int = 60,
        frame_max: int = 131072,
        channel_max: int = 2047,
        memory_limit: int | None = None,
        handshake_timeout: float = 10.0,
        rabbitmq: str | None = None,
        max_message_size: int | None = None,
        history: str | None = None,
        data_dir: str | None = None,
    ) -> None:
        """``data_dir``: where durable queues, exchanges, bindings and persistent messages of the vhost "/"
        are logged (store.py) and recovered from on start; None keeps everything in memory only."""
        self.host = _loopback(host)
        self.port = v.port("port", port, allow_zero=True)
        for name, value in (("user", user), ("password", password)):
            if not isinstance(value, str) or not value or "\x00" in value:
                raise ValueError(f"{name} must be a non-empty string without NUL bytes, got {value!r}")
        self.user, self.password = user, password
        self.heartbeat = v.integer("heartbeat", heartbeat, 0, 65535)
        self.frame_max = v.integer("frame_max", frame_max, frames.FRAME_MIN_SIZE, 2**31 - 1)
        self.channel_max = v.integer("channel_max", channel_max, 1, 65535)
        self.memory_limit = None if memory_limit is None else v.integer("memory_limit", memory_limit, 1)
        self.handshake_timeout = v.positive("handshake_timeout", handshake_timeout)
        #: which RabbitMQ release to behave like ("4.3" or "3.10"; default $LABKIT_RABBITMQ or 4.3)
        self.profile = profiles.resolve(rabbitmq)
        #: largest message body accepted (RabbitMQ's max_message_size: the profile's default, at most 512 MiB)
        self.max_message_size = (
            self.profile.max_message_size
            if max_message_size is None
            else v.integer("max_message_size", max_message_size, 1, profiles.MAX_MESSAGE_SIZE)
        )
        if history is not None and (not isinstance(history, str) or not history):
            raise ValueError(
                f"history must be a file path for the broker's events (labkit.broker.tap), got {history!r}"
            )
        self.history = history  # off (None) by default
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir or "\x00" in data_dir):
            raise ValueError(f"data_dir must be a directory path (str) or None, got {data_dir!r}")
        self.data_dir = data_dir
        self.store: Store | None = None
        self.cluster_name = "labkit"
        self.connections: set[Connection] = set()
        self._drained: asyncio.Event | None = None  # set when the last connection goes, while stop() waits
        self._pending: list[Connection] = []  # connections with unflushed output
        self._flush_handle: asyncio.Handle | None = None
        self.memory = MemoryAlarm(self.memory_limit, self._alarm)
        self.auth = Auth(user, password, self._make_vhost, self._vhost_deleted)
        self.vhost = self.auth.vhosts["/"]
        self._server: asyncio.base_events.Server | None = None
        self._samples: dict[str, list[tuple[float, list[int]]]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> Broker:
        if self._server is not None:
            raise RuntimeError("broker already started")
        loop = asyncio.get_running_loop()
        if self.data_dir is not None:
            self.store = Store(self.data_dir)
            restore(self.vhost, self.store)
        try:
            self._server = await loop.create_server(lambda: Connection(self), self.host, self.port, reuse_address=True)
        except BaseException:
            self._close_store()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        if self.history is not None:
            self.vhost.tap = Tap(self.history)
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("broker not started: await broker.start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        """Close every connection (320 CONNECTION_FORCED, as RabbitMQ does on shutdown) and the listener."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        reason = errors.ConnectionForced("broker forced connection closure with reason 'shutdown'")
        for conn in list(self.connections):
            conn.close_with(reason)
        if self.connections:
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                pass  # clients that did not answer in time are cut off below
            self._drained = None
        for conn in list(self.connections):
            conn._abort()
        self._close_store()  # first: clearing the vhosts below must not log durable things as deleted
        for vhost in self.auth.vhosts.values():
            vhost.clear()
        self.flush_pending()
        if self.vhost.tap is not None:
            self.vhost.tap.close()
            self.vhost.tap = None
        await server.wait_closed()

    def _close_store(self) -> None:
        store, self.store = self.store, None
        self.vhost.store = None
        if store is not None:
            store.close()

    async def __aenter__(self) -> Broker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def reset(self) -> None:
        """Delete all queues and user exchanges (consumers get basic.cancel); connections stay open."""
        for vhost in self.auth.vhosts.values():
            vhost.clear()
        self.memory.reset()
        self._samples.clear()

    # -- vhosts (users and permissions: self.auth) ----------------------------------------------
    def _make_vhost(self, name: str) -> VHost:
        vhost = VHost(self.memory, self.profile)
        vhost.name = name
        return vhost

    def _vhost_deleted(self, name: str) -> None:
        """Like RabbitMQ: connections to a deleted vhost are closed with 320 CONNECTION_FORCED."""
        reason = errors.ConnectionForced(f"vhost '{name}' is deleted")
        for conn in list(self.connections):
            if conn.vhost.name == name:
                conn.close_with(reason)

    # -- output coalescing ----------------------------------------------------------------------
    def connection_gone(self, conn: Connection) -> None:
        """A connection tore down: forget it, and wake a stop() that waits for the last one."""
        self.connections.discard(conn)
        if not self.connections and self._drained is not None:
            self._drained.set()

    def queue_flush(self, conn: Connection) -> None:
        self._pending.append(conn)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush_pending)

    def flush_pending(self) -> None:
        """Send what every connection has buffered (one socket write each)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending = self._pending
        while pending:
            conn = pending.pop()
            conn.flush_queued = False
            conn._flush()

    # -- flow control ---------------------------------------------------------------------------
    def _alarm(self, blocked: bool) -> None:
        """Publishing connections block themselves when they next publish; clearing unblocks them all."""
        if not blocked:
            for conn in list(self.connections):
                conn.unblock()

    # -- introspection --------------------------------------------------------------------------
    def queues(self) -> list[dict[str, Any]]:
        """Per queue: ready/unacked counts, consumers, and publish/deliver/ack rates in msg/s, averaged
        over the last RATE_WINDOW seconds of calls to this method (0.0 until a queue has been seen
        twice), so several pollers (a notebook, the admin API) do not disturb each other's rates."""
        now = time.monotonic()
        out, samples = [], {}
        for name in sorted(self.vhost.queues):
            q = self.vhost.queues[name]
            history = self._samples.get(name, [])
            history = [sample for sample in history if now - sample[0] <= RATE_WINDOW] or history[-1:]
            if history and now > history[0][0]:
                t0, old = history[0]
                rates = [(c - p) / (now - t0) for c, p in zip(q.stats, old)]
            else:
                rates = [0.0, 0.0, 0.0]
            history.append((now, list(q.stats)))
            samples[name] = history
            out.append(
                {
                    "name": name,
                    "type": q.kind,
                    "messages_ready": q.message_count(),
                    "messages_unacknowledged": q.unacked,
                    "consumers": len(q.consumers),
                    "publish_rate": rates[0],
                    "deliver_rate": rates[1],
                    "ack_rate": rates[2],
                }
            )
        self._samples = samples
        return out

    def overview(self) -> dict[str, Any]:
        """Broker-wide totals (for the admin API)."""
        queues = self.vhost.queues.values()
        return {
            "url": self.url if self.running else None,
            "connections": len(self.connections),
            "channels": sum(len(c.channels) for c in self.connections),
            "queues": len(self.vhost.queues),
            "exchanges": len(self.vhost.exchanges),
            "consumers": sum(len(q.consumers) for q in queues),
            "messages_ready": sum(q.message_count() for q in queues),
            "messages_unacknowledged": sum(q.unacked for q in queues),
            "message_bytes": self.memory.used,
            "memory_limit": self.memory_limit,
            "blocked": self.memory.blocked,
        }

    def __repr__(self) -> str:
        return f"<Broker {self.url if self.running else 'stopped'}>"
