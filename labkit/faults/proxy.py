"""The fault proxy: listens on 127.0.0.1, forwards every connection to its upstream through the toxics.

Its own state is explicit (:class:`ProxyState`): STOPPED, LISTENING (accepting and forwarding), or
REFUSING (the link is down: the listening socket is closed, the port held, connections refused).
Down is a state of the proxy, not a toxic (as in Toxiproxy, where a proxy is ``enabled`` or not):
:meth:`FaultProxy.down` and :meth:`FaultProxy.up` switch it, and a schedule takes the link down for a
window with a ``(t_start, t_end, DOWN)`` entry.

The proxy decides when to listen and which toxics apply; the socket that holds its port while it refuses
is :class:`labkit.faults.listener.Listener`, the bytes of each connection are pumped by
:mod:`labkit.faults.link`, and the plan and bands of its fault windows are :mod:`labkit.faults.timeline`.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from labkit._validate import port as check_port
from labkit.faults import timeline
from labkit.faults.link import Connection, abort
from labkit.faults.listener import Listener
from labkit.faults.timeline import DOWN, Activation, Switch
from labkit.faults.toxics import Blackhole, Toxic, check_toxic
from labkit.metrics import Clock, as_t0, sleep_until

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PROXY_TRANSITIONS", "FaultProxy", "ProxyState"]


class ProxyState(str, enum.Enum):
    """Where a fault proxy is in its life (a ``str``: ``ProxyState.REFUSING == "refusing"``)."""

    STOPPED = "stopped"
    LISTENING = "listening"
    REFUSING = "refusing"  # down: connection attempts are refused


#: The moves a proxy may make; any other is a bug, and :meth:`FaultProxy._to` says so.
PROXY_TRANSITIONS: dict[ProxyState, frozenset[ProxyState]] = {
    ProxyState.STOPPED: frozenset({ProxyState.LISTENING}),
    ProxyState.LISTENING: frozenset({ProxyState.REFUSING, ProxyState.STOPPED}),
    ProxyState.REFUSING: frozenset({ProxyState.LISTENING, ProxyState.STOPPED}),
}


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host:upstream_port`` through the active toxics.

    ``proxy = await FaultProxy("127.0.0.1", 5672, "broker").start()``; point clients at ``proxy.port``
    (``proxy.url`` for HTTP, ``proxy.via(url)`` to rewrite any URL); ``proxy.set(Latency(50))``,
    ``proxy.down()``/``proxy.up()``, ``proxy.clear()``, ``proxy.schedule([(2, 5, DOWN), (5, 8, Latency(50))],
    clock)``; ``await proxy.stop()``.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, name: str | None = None, *, port: int = 0, seed: int = 0
    ):
        if not isinstance(upstream_host, str) or not upstream_host:
            raise ValueError(f"upstream_host must be a host name or address, got {upstream_host!r}")
        self.upstream_host = upstream_host
        self.upstream_port = check_port("upstream_port", upstream_port)
        self.name = name or f"proxy:{upstream_port}"
        self.rng = random.Random(seed)
        self.started_at: float | None = None
        self.activations: list[Activation] = []
        #: connections accepted, and bytes read from clients ("upstream") and from the upstream ("downstream")
        self.accepted = 0
        self.bytes = {"upstream": 0, "downstream": 0}
        self._active: list[Toxic] = []
        self._changed = asyncio.Event()
        self._connections: set[Connection] = set()
        self._handlers: set[asyncio.Task] = set()
        self._listener = Listener(check_port("port", port, allow_zero=True), self._accept)
        self._schedule: asyncio.Task | None = None
        self.state = ProxyState.STOPPED

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on 127.0.0.1 (an ephemeral port unless one was given) and return self."""
        if self.state is ProxyState.STOPPED:
            self._listener.open()
            await self._listener.started()
            self._to(ProxyState.LISTENING)
            self.started_at = time.monotonic()
        return self

    @property
    def running(self) -> bool:
        return self.state is not ProxyState.STOPPED

    def _to(self, state: ProxyState) -> None:
        if state not in PROXY_TRANSITIONS[self.state]:
            raise RuntimeError(f"fault proxy {self.name!r} cannot go from {self.state.value} to {state.value}")
        self.state = state

    async def stop(self) -> None:
        """Cancel the schedule, stop listening, reset every connection and wait for all of it to end."""
        if self.state is not ProxyState.STOPPED:
            self._end_outage()
            self._to(ProxyState.STOPPED)
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
            self._schedule = None
        await self._listener.stop()
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self._deactivate_all()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on (chosen when it starts, unless one was given)."""
        return self._listener.port

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

    # -- connections ----------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection handler always runs in a task
        self._handlers.add(task)
        self.accepted += 1
        try:
            if self.state is not ProxyState.LISTENING:  # accepted just before the listener closed
                abort(writer)
                return
            try:
                upstream = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                abort(writer)  # upstream refused: the client sees its connection reset
                return
            conn = Connection(self, (reader, writer), upstream)
            self._connections.add(conn)
            try:
                await conn.run()
            finally:
                self._connections.discard(conn)
        except asyncio.CancelledError:
            abort(writer)
        finally:
            self._handlers.discard(task)

    # -- down and up ----------------------------------------------------------------------------------------

    def down(self) -> None:
        """Take the link down: refuse new connections (port held, see ``Listener``), reset open ones.

        A no-op if it is down already; a RuntimeError on a stopped proxy (start it first)."""
        if self.state is ProxyState.REFUSING:
            return
        if self.state is ProxyState.STOPPED:
            raise RuntimeError(f"fault proxy {self.name!r} is stopped: start it before taking it down")
        self._listener.refuse()
        self._to(ProxyState.REFUSING)
        self.activations.append(Activation(DOWN, time.monotonic()))
        for conn in list(self._connections):
            conn.abort()

    def up(self) -> None:
        """Bring the link back up: listen and forward again (a no-op unless it is down)."""
        if self.state is ProxyState.REFUSING:
            self._listener.open()
            self._to(ProxyState.LISTENING)
            self._end_outage()

    @property
    def is_down(self) -> bool:
        return self.state is ProxyState.REFUSING

    def _end_outage(self) -> None:
        for a in self.activations:
            if a.fault == DOWN and a.end is None:
                a.end = time.monotonic()

    # -- toxics -------------------------------------------------------------------------------------------

    @property
    def toxics(self) -> list[Toxic]:
        """The toxics active now."""
        return list(self._active)

    def set(self, *toxics: Toxic) -> None:
        """Make exactly ``toxics`` active (replacing the current ones)."""
        for t in toxics:
            check_toxic(t)
        for t in list(self._active):
            if t not in toxics:
                self.remove(t)
        for t in toxics:
            self.add(t)

    def add(self, toxic: Toxic) -> None:
        """Activate one more toxic (no-op if it is already active)."""
        check_toxic(toxic)
        if toxic in self._active:
            return
        self._active.append(toxic)
        self.activations.append(Activation(toxic, time.monotonic()))
        self._notify()

    def remove(self, toxic: Toxic) -> None:
        """Deactivate a toxic (no-op if it is not active)."""
        if toxic not in self._active:
            return
        self._active.remove(toxic)
        for a in self.activations:
            if a.fault is toxic and a.end is None:
                a.end = time.monotonic()
        self._notify()

    def clear(self) -> None:
        """Cancel any pending schedule, remove every toxic and bring the link up: it is healthy again."""
        if self._schedule is not None:
            self._schedule.cancel()
            self._schedule = None
        self._deactivate_all()
        self.up()

    def _deactivate_all(self) -> None:
        for t in list(self._active):
            self.remove(t)

    def _notify(self) -> None:
        """Wake pipes waiting on a Blackhole so they re-check the active toxics."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _toxics_for(self, conn: Connection, direction: str) -> list[Toxic]:
        """The toxics that apply to this connection and direction now; waits while a Blackhole applies."""
        while True:
            mine = [t for t in self._active if t.applies_to(direction) and conn.hit(t)]
            if not any(isinstance(t, Blackhole) for t in mine):
                return mine
            await self._changed.wait()

    # -- timeline -------------------------------------------------------------------------------------------

    def schedule(
        self, plan: Iterable[tuple[float, float, Toxic | Literal["down"]]], t0: Clock | float | None = None
    ) -> asyncio.Task:
        """Switch toxics on and off at experiment times: ``[(t_start, t_end, toxic), ...]`` seconds after t0.

        A ``(t_start, t_end, DOWN)`` entry takes the link down (:meth:`down`) for that window instead.
        Replaces any pending schedule; returns its task (await it to wait for the last switch).
        ``t_end`` may be ``math.inf`` (stays on until ``clear()``/``stop()``).
        """
        events = timeline.switches(plan)
        origin = as_t0(t0)
        if self._schedule is not None:
            self._schedule.cancel()
        self._schedule = asyncio.ensure_future(self._run_schedule(events, origin))
        return self._schedule

    async def _run_schedule(self, events: list[Switch], origin: float) -> None:
        for t, on, fault in events:
            await sleep_until(origin + t)
            if isinstance(fault, Toxic):
                (self.add if on else self.remove)(fault)
            else:
                (self.down if on else self.up)()

    def bands(self, t0: Clock | float | None = None) -> list[dict]:
        """When each toxic was active, in seconds after t0: ``[{"label", "kind", "start", "end"}]``.

        ``end`` is None while the toxic is still active. Feed to a timeline plot as shaded bands. Without
        ``t0``, times count from when the proxy started.
        """
        origin = as_t0(t0) if t0 is not None else (self.started_at or 0.0)
        return timeline.bands(self.name, self.activations, origin)

    def __repr__(self) -> str:
        return (
            f"FaultProxy({self.name!r}, 127.0.0.1:{self.port} -> {self.upstream_host}:{self.upstream_port}, "
            f"{self.state.value}, toxics={self._active!r})"
        )
