"""A TCP fault proxy in the spirit of Toxiproxy: put it in front of any link (HTTP or AMQP) and break it.

Why a proxy and not flags in the services: a real network fault happens *between* programs, so the
caller's real client library (aiohttp, aiormq) must meet a real refused connection, a real reset, a real
silence. The proxy listens on 127.0.0.1, opens one upstream connection per client connection and pumps
bytes both ways through the active "toxics" (Toxiproxy's model: a kind, attributes, a direction and a
probability, switched live):

- ``Latency(ms, jitter_ms)`` delays every chunk by ms ± jitter (pipelined: chunks are not serialised
  behind each other's delay); default direction downstream, so a request/response gains ≈ ms.
- ``Down()`` refuses new connections (the listening socket is closed) and resets existing ones.
- ``Blackhole()`` accepts and reads but forwards nothing until removed: callers time out.
- ``Bandwidth(kbps)`` limits throughput to kbps kilobits (1000 bits) per second.
- ``Reset(probability)`` closes connections with a TCP RST when they next carry data.

Directions follow Toxiproxy: ``upstream`` is client → server, ``downstream`` server → client, ``both``.
``probability`` (Toxiproxy's "toxicity") is drawn once per connection and toxic, from a seeded RNG.
``schedule()`` switches toxics on the experiment timeline and ``bands()`` says when each was active, so
plots can shade fault windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from labkit._validate import non_negative, one_of, positive
from labkit._validate import port as check_port
from labkit._validate import probability as check_probability
from labkit.metrics import Clock, as_t0, sleep_until

__all__ = ["DIRECTIONS", "Toxic", "Latency", "Down", "Blackhole", "Bandwidth", "Reset", "FaultProxy"]

DIRECTIONS = ("upstream", "downstream", "both")
_CHUNK = 65536


# --- toxics ----------------------------------------------------------------------------------------------


class Toxic:
    """A fault applied to the bytes of some connections in some direction(s) while active."""

    default_direction = "both"

    def __init__(self, *, direction: str | None = None, probability: float = 1.0):
        self.direction = one_of("direction", direction or self.default_direction, DIRECTIONS)
        self.probability = check_probability("probability", probability)

    def applies_to(self, direction: str) -> bool:
        return self.direction in (direction, "both")

    async def hold(self, pipe: _Pipe, arrived: float, nbytes: int) -> None:
        """Delay (or stop) one chunk that ``pipe`` read at ``arrived``; the base toxic does nothing."""

    def _params(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = [self._params()] if self._params() else []
        if self.direction != self.default_direction:
            extra.append(f"direction={self.direction!r}")
        if self.probability != 1:
            extra.append(f"probability={self.probability!r}")
        return f"{type(self).__name__}({', '.join(extra)})"


class Latency(Toxic):
    """Delay each chunk by ``ms`` ± ``jitter_ms`` milliseconds (uniform jitter, never below 0)."""

    default_direction = "downstream"

    def __init__(self, ms: float, jitter_ms: float = 0.0, *, direction: str | None = None, probability: float = 1.0):
        self.ms = non_negative("ms", ms)
        self.jitter_ms = non_negative("jitter_ms", jitter_ms)
        super().__init__(direction=direction, probability=probability)

    async def hold(self, pipe: _Pipe, arrived: float, nbytes: int) -> None:
        jitter = pipe.proxy.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        delay = arrived + max(0.0, self.ms + jitter) / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _params(self) -> str:
        return f"{self.ms!r} ms" + (f" ± {self.jitter_ms!r}" if self.jitter_ms else "")


class Bandwidth(Toxic):
    """Limit the byte rate to ``kbps`` kilobits (1000 bits) per second, per connection and direction.

    Each chunk read (up to 64 KiB) leaves when the link would have finished sending it, so transfer times
    are right while the output arrives in chunk-sized steps rather than a smooth trickle.
    """

    default_direction = "downstream"

    def __init__(self, kbps: float, *, direction: str | None = None, probability: float = 1.0):
        self.kbps = positive("kbps", kbps)
        super().__init__(direction=direction, probability=probability)

    async def hold(self, pipe: _Pipe, arrived: float, nbytes: int) -> None:
        # a virtual clock per pipe: each chunk may leave only after the previous ones' transmission time
        pipe.free_at = max(pipe.free_at, time.monotonic()) + nbytes * 8 / (self.kbps * 1000)
        await sleep_until(pipe.free_at)

    def _params(self) -> str:
        return f"{self.kbps!r} kbps"


class Reset(Toxic):
    """With ``probability`` per connection, reset it (TCP RST both ways) when it next carries data."""

    def __init__(self, probability: float = 1.0, *, direction: str | None = None):
        super().__init__(direction=direction, probability=probability)

    async def hold(self, pipe: _Pipe, arrived: float, nbytes: int) -> None:
        pipe.conn.abort()
        raise ConnectionResetError("reset by the fault proxy")


class Blackhole(Toxic):
    """Read and hold everything, forward nothing while active: requests hang until the caller gives up."""


class Down(Toxic):
    """The link is down: new connections are refused and existing ones reset.

    With ``probability`` < 1 the listener stays open and each connection is reset with that probability.
    """

    def __init__(self, *, probability: float = 1.0):
        super().__init__(probability=probability)


# --- connections -----------------------------------------------------------------------------------------


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a socket with RST (SO_LINGER 0), the way a crashed or firewalled peer looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Pipe:
    """One direction of a connection: a reader task queues chunks, a writer task applies toxics in order."""

    def __init__(self, conn: _Connection, direction: str, reader, writer):
        self.conn, self.proxy, self.direction = conn, conn.proxy, direction
        self.reader, self.writer = reader, writer
        self.chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.free_at = 0.0  # Bandwidth's virtual clock
        self.idle = True  # the writer task holds no chunk (so the reader may forward one itself)

    async def read(self) -> None:
        """Keep reading (even while blackholed), stamping each chunk with its arrival time; b"" is EOF.

        With no toxic active and nothing queued, a chunk is forwarded from here at once: a healthy link
        costs one task switch less per chunk (a third of the proxy's CPU per request).
        """
        while True:
            data = await self.reader.read(_CHUNK)
            self.proxy.bytes[self.direction] += len(data)
            if data and self.idle and self.chunks.empty() and not self.proxy._active:
                self.writer.write(data)
                await self.writer.drain()
                continue
            self.chunks.put_nowait((time.monotonic(), data))
            if not data:
                return

    async def write(self) -> None:
        while True:
            self.idle = True
            arrived, data = await self.chunks.get()
            self.idle = False
            for toxic in await self.proxy._toxics_for(self.conn, self.direction):
                await toxic.hold(self, arrived, len(data))
            if not data:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            self.writer.write(data)
            await self.writer.drain()


class _Connection:
    """A client connection and its upstream connection, pumped both ways until both sides finish."""

    def __init__(self, proxy: FaultProxy, client, upstream):
        self.proxy = proxy
        (c_reader, self.client), (u_reader, self.upstream) = client, upstream
        self.pipes = (
            _Pipe(self, "upstream", c_reader, self.upstream),
            _Pipe(self, "downstream", u_reader, self.client),
        )
        self.draws: dict[Toxic, bool] = {}  # probability draws, once per toxic

    def hit(self, toxic: Toxic) -> bool:
        """Does ``toxic`` apply to this connection? Drawn once per connection from the proxy's RNG."""
        if toxic not in self.draws:
            self.draws[toxic] = toxic.probability == 1 or self.proxy.rng.random() < toxic.probability
        return self.draws[toxic]

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(f()) for p in self.pipes for f in (p.read, p.write)]
        try:
            await asyncio.gather(*tasks)
        except OSError:  # a reset on either side (or a Reset toxic): reset the other side too
            self.abort()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (self.client, self.upstream):
                w.close()

    def abort(self) -> None:
        _abort(self.client)
        _abort(self.upstream)


# --- the proxy ---------------------------------------------------------------------------------------------


@dataclass
class Activation:
    """When a toxic was switched on and off (monotonic seconds; ``end`` None while still active)."""

    toxic: Toxic
    start: float
    end: float | None = None


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host:upstream_port`` through the active toxics.

    ``proxy = await FaultProxy("127.0.0.1", 5672, "broker").start()``; point clients at ``proxy.port``
    (``proxy.url`` for HTTP, ``proxy.via(url)`` to rewrite any URL); ``proxy.set(Latency(50))``,
    ``proxy.clear()``, ``proxy.schedule([(2, 5, Down())], clock)``; ``await proxy.stop()``.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, name: str | None = None, *, port: int = 0, seed: int = 0
    ):
        if not isinstance(upstream_host, str) or not upstream_host:
            raise ValueError(f"upstream_host must be a host name or address, got {upstream_host!r}")
        self.upstream_host = upstream_host
        self.upstream_port = check_port("upstream_port", upstream_port)
        self.name = name or f"proxy:{upstream_port}"
        self.port = check_port("port", port, allow_zero=True)
        self.rng = random.Random(seed)
        self.started_at: float | None = None
        self.activations: list[Activation] = []
        #: connections accepted, and bytes read from clients ("upstream") and from the upstream ("downstream")
        self.accepted = 0
        self.bytes = {"upstream": 0, "downstream": 0}
        self._active: list[Toxic] = []
        self._changed = asyncio.Event()
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task] = set()
        self._sock: socket.socket | None = None
        self._reserved: socket.socket | None = None  # holds the port while Down (see _reserve_port)
        self._server: asyncio.AbstractServer | None = None
        self._serving: set[asyncio.Task] = set()
        self._schedule: asyncio.Task | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        """Listen on 127.0.0.1 (an ephemeral port unless one was given) and return self."""
        if not self._started:
            self._open_listener()
            await asyncio.gather(*self._serving)
            self._started = True
            self.started_at = time.monotonic()
        return self

    async def stop(self) -> None:
        """Cancel the schedule, stop listening, reset every connection and wait for all of it to end."""
        self._started = False  # from here on, removing a Down toxic must not reopen the listener
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
            self._schedule = None
        self._close_listener()
        self._release_port()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self._deactivate_all()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy, for HTTP clients."""
        return f"http://127.0.0.1:{self.port}"

    def via(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (keeps scheme, credentials, path)."""
        parts = urlsplit(url)
        if not parts.scheme or parts.hostname is None:
            raise ValueError(f"url must be an absolute URL like amqp://guest:guest@127.0.0.1:5672/, got {url!r}")
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # -- listening ----------------------------------------------------------------------------------------

    def _open_listener(self) -> None:
        """Bind and listen synchronously (so no connection is refused from here on), serve in a task."""
        self._release_port()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        task = asyncio.ensure_future(self._serve(sock))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    def _reserve_port(self) -> None:
        """Keep the port while Down with a socket that is bound but does not listen.

        Connections to it are refused just as to a closed port, but no other program can start listening
        on it meanwhile: on a busy machine a freed ephemeral port is soon handed to someone else's server,
        and callers would reach a stranger instead of failing. Bound without SO_REUSEADDR when possible,
        because a socket with SO_REUSEADDR (aiohttp's, for one) may share a port with another such socket
        that is not listening; with SO_REUSEADDR when the old listener's connections still hold the port.
        """
        self._release_port()
        for reuse in (0, 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuse)
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError:
                sock.close()
                continue
            self._reserved = sock
            return

    def _release_port(self) -> None:
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    async def _serve(self, sock: socket.socket) -> None:
        server = await asyncio.start_server(self._accept, sock=sock)
        if self._sock is sock:
            self._server = server
        else:  # closed (Down or stop) while starting: asyncio's Server.close() unregisters and closes it
            server.close()

    def _close_listener(self) -> None:
        """Stop listening: connection attempts are refused from here on.

        A listener still starting is closed by its ``_serve`` task (never cancelled midway, which could
        leave a closed socket registered with the event loop).
        """
        if self._server is not None:
            self._server.close()
        self._server = None
        self._sock = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection handler always runs in a task
        self._handlers.add(task)
        self.accepted += 1
        try:
            if any(isinstance(t, Down) and self.rng.random() < t.probability for t in self._active):
                _abort(writer)
                return
            try:
                upstream = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                _abort(writer)  # upstream refused: the client sees its connection reset
                return
            conn = _Connection(self, (reader, writer), upstream)
            self._connections.add(conn)
            try:
                await conn.run()
            finally:
                self._connections.discard(conn)
        except asyncio.CancelledError:
            _abort(writer)
        finally:
            self._handlers.discard(task)

    # -- toxics -------------------------------------------------------------------------------------------

    @property
    def toxics(self) -> list[Toxic]:
        """The toxics active now."""
        return list(self._active)

    def set(self, *toxics: Toxic) -> None:
        """Make exactly ``toxics`` active (replacing the current ones)."""
        for t in toxics:
            _check_toxic(t)
        for t in list(self._active):
            if t not in toxics:
                self.remove(t)
        for t in toxics:
            self.add(t)

    def add(self, toxic: Toxic) -> None:
        """Activate one more toxic (no-op if it is already active)."""
        _check_toxic(toxic)
        if toxic in self._active:
            return
        self._active.append(toxic)
        self.activations.append(Activation(toxic, time.monotonic()))
        if isinstance(toxic, Down):
            if toxic.probability == 1 and self._started:
                self._close_listener()
                self._reserve_port()
            for conn in list(self._connections):
                if conn.hit(toxic):
                    conn.abort()
        self._notify()

    def remove(self, toxic: Toxic) -> None:
        """Deactivate a toxic (no-op if it is not active)."""
        if toxic not in self._active:
            return
        self._active.remove(toxic)
        for a in self.activations:
            if a.toxic is toxic and a.end is None:
                a.end = time.monotonic()
        if self._started and self._sock is None and not self._refusing():
            self._open_listener()
        self._notify()

    def clear(self) -> None:
        """Cancel any pending schedule and remove every toxic: the link is healthy again."""
        if self._schedule is not None:
            self._schedule.cancel()
            self._schedule = None
        self._deactivate_all()

    def _deactivate_all(self) -> None:
        for t in list(self._active):
            self.remove(t)

    def _refusing(self) -> bool:
        return any(isinstance(t, Down) and t.probability == 1 for t in self._active)

    def _notify(self) -> None:
        """Wake pipes waiting on a Blackhole so they re-check the active toxics."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _toxics_for(self, conn: _Connection, direction: str) -> list[Toxic]:
        """The toxics that apply to this connection and direction now; waits while a Blackhole applies."""
        while True:
            mine = [t for t in self._active if t.applies_to(direction) and conn.hit(t)]
            if not any(isinstance(t, Blackhole) for t in mine):
                return mine
            await self._changed.wait()

    # -- timeline -------------------------------------------------------------------------------------------

    def schedule(self, plan: Iterable[tuple[float, float, Toxic]], t0: Clock | float | None = None) -> asyncio.Task:
        """Switch toxics on and off at experiment times: ``[(t_start, t_end, toxic), ...]`` seconds after t0.

        Replaces any pending schedule; returns its task (await it to wait for the last switch).
        ``t_end`` may be ``math.inf`` (stays on until ``clear()``/``stop()``).
        """
        events: list[tuple[float, int, Toxic]] = []
        for i, item in enumerate(plan):
            try:
                t_start, t_end, toxic = item
            except (TypeError, ValueError):
                raise ValueError(f"plan[{i}] must be a (t_start, t_end, toxic) tuple, got {item!r}") from None
            non_negative(f"plan[{i}].t_start", t_start)
            positive(f"plan[{i}].t_end - t_start", t_end - t_start, allow_inf=True)
            _check_toxic(toxic, f"plan[{i}].toxic")
            events.append((t_start, 1, toxic))
            if t_end != float("inf"):
                events.append((t_end, 0, toxic))
        events.sort(key=lambda e: (e[0], e[1]))  # at equal times switch off before switching on
        origin = as_t0(t0)
        if self._schedule is not None:
            self._schedule.cancel()
        self._schedule = asyncio.ensure_future(self._run_schedule(events, origin))
        return self._schedule

    async def _run_schedule(self, events: list[tuple[float, int, Toxic]], origin: float) -> None:
        for t, on, toxic in events:
            await sleep_until(origin + t)
            (self.add if on else self.remove)(toxic)

    def bands(self, t0: Clock | float | None = None) -> list[dict]:
        """When each toxic was active, in seconds after t0: ``[{"label", "kind", "start", "end"}]``.

        ``end`` is None while the toxic is still active. Feed to a timeline plot as shaded bands. Without
        ``t0``, times count from when the proxy started.
        """
        origin = as_t0(t0) if t0 is not None else (self.started_at or 0.0)
        return [
            {
                "label": f"{self.name}: {a.toxic!r}",
                "kind": type(a.toxic).__name__,
                "start": a.start - origin,
                "end": None if a.end is None else a.end - origin,
            }
            for a in self.activations
        ]

    def __repr__(self) -> str:
        state = "listening" if self._sock is not None else ("refusing" if self._started else "stopped")
        return (
            f"FaultProxy({self.name!r}, 127.0.0.1:{self.port} -> {self.upstream_host}:{self.upstream_port}, "
            f"{state}, toxics={self._active!r})"
        )


def _check_toxic(toxic, name: str = "toxic") -> Toxic:
    if not isinstance(toxic, Toxic):
        kinds = ", ".join(k.__name__ for k in (Latency, Down, Blackhole, Bandwidth, Reset))
        raise ValueError(f"{name} must be one of {kinds} (a labkit.faults toxic), got {toxic!r}")
    return toxic
