"""The Lab: the one object a chapter starts, and the owner of everything started for it.

Why: a notebook is re-run cell by cell, out of order, and interrupted. If services, consumers, proxies,
connections and the broker were loose objects, every re-run would leak sockets and processes until the
kernel died. So the lab starts them all, remembers them, and ``await lab.stop()`` releases all of it
(last started, first stopped). Only one lab runs per kernel: starting a new one stops the previous one
first, so re-running the "start the lab" cell is always safe.

    lab = await Lab.start(seed=0)          # or: async with Lab(seed=0) as lab: ...
    payment = await lab.service("payment", service_time=0.05)
    order = await lab.service("order", downstream=[payment])
    await lab.call(order)                   # one traced HTTP request; raises on failure
    worker = await lab.consumer("emails", work_time=0.1)
    await lab.publish("emails", b"hello")
    await lab.stop()

The broker is the embedded one (``labkit.broker``, in its own process, exiting with the kernel) unless the
environment variable ``AMQP_URL`` is set, in which case the same code talks to that broker (RabbitMQ).
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

import aiohttp
import aiormq

from labkit import hints, tracing
from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, positive
from labkit.broker import profiles as broker_profiles
from labkit.consumers import Consumer
from labkit.lab_http import HTTPStatusError, LabHttp
from labkit.lab_messaging import LabMessaging
from labkit.lab_view import lab_html, lab_repr
from labkit.lifecycle import stopped_on_failure, unique
from labkit.metrics import Clock
from labkit.services import Service

__all__ = ["Lab", "HTTPStatusError"]


class _Startable(Protocol):
    """What :meth:`Lab.start_part` needs of a part (a full :class:`labkit.lifecycle.Component` has more)."""

    async def start(self) -> Any: ...

    async def stop(self) -> Any: ...


P = TypeVar("P", bound=_Startable)


class _class_or_instance:
    """``Lab.start(...)`` creates and starts a lab; ``lab.start(part)`` attaches a part to a running one.

    One name for both keeps the notebooks' vocabulary to a single verb: whatever you start, you ``start``.
    """

    def __init__(self, create: Callable[..., Any]):
        self._create = create
        self.__doc__ = create.__doc__

    def __get__(self, lab: Lab | None, cls: type) -> Callable[..., Any]:
        if lab is None:
            return self._create.__get__(cls, cls) if hasattr(self._create, "__get__") else self._create
        return lab.start_part


class Lab(LabHttp, LabMessaging):
    """Everything one experiment runs on. See the module docstring for a tour.

    The lab itself is about lifecycle (start, own, stop); its HTTP side (services, proxies, calls) is
    :class:`labkit.lab_http.LabHttp`, its broker side :class:`labkit.lab_messaging.LabMessaging`, and how it
    shows itself :mod:`labkit.lab_view`."""

    #: The running lab of this process (kernel), replaced when another one starts.
    _current: ClassVar[Lab | None] = None

    def __init__(
        self,
        seed: int = 0,
        *,
        amqp: bool = True,
        amqp_url: str | None = None,
        broker_options: dict[str, Any] | None = None,
        http_timeout: float = 30.0,
        rabbitmq: str | None = None,
    ):
        """``amqp=False`` skips the broker (HTTP-only experiments start faster); ``amqp_url`` overrides
        ``AMQP_URL``; ``broker_options`` go to the embedded broker (e.g. ``{"memory_limit": 50_000_000}``);
        ``rabbitmq`` picks the RabbitMQ release the embedded broker behaves like, "4.3" (default) or "3.10"
        (default: the ``LABKIT_RABBITMQ`` environment variable)."""
        self.seed = integer("seed", seed, 0)
        self.amqp = bool(amqp)
        self._amqp_url_option = None if amqp_url is None else check_amqp_url("amqp_url", amqp_url)
        if broker_options is not None and not isinstance(broker_options, dict):
            raise ValueError(f"broker_options must be a dict of Broker options or None, got {broker_options!r}")
        self.broker_options = dict(broker_options or {})
        # Which RabbitMQ release the embedded broker behaves like: "4.3" (default) or "3.10"; None reads
        # $LABKIT_RABBITMQ. Checked here, so a typo fails at Lab(...), naming the argument.
        self.rabbitmq = broker_profiles.resolve(rabbitmq).name
        self.broker_options.setdefault("rabbitmq", self.rabbitmq)
        self.http_timeout = positive("http_timeout", http_timeout)
        #: the experiment's timeline, shared with labkit.load/metrics/faults (see :meth:`mark`).
        self.clock = Clock()
        self.tracer = tracing.Tracer()
        self.services: dict[str, Service] = {}
        self.consumers: list[Consumer] = []
        self.proxies: list[Any] = []
        self.amqp_url: str | None = None
        self.broker_kind: str | None = None
        self.http: aiohttp.ClientSession | None = None
        self._broker: Any = None
        self._data_dir: Any = None  # weakref.finalize removing the embedded broker's data directory
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._default_channel: aiormq.abc.AbstractChannel | None = None
        # Concurrent first uses (e.g. many publishes at once) must share one connection and one default
        # channel: two would leak a connection and let messages overtake each other.
        self._amqp_lock = asyncio.Lock()
        self._owned: list[Any] = []  # things with an async stop(), in start order
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------------

    @_class_or_instance
    @classmethod
    async def start(cls, seed: int = 0, **options: Any) -> Lab:
        """``await Lab.start(seed, **options)``: start a lab (stopping the one already running in this
        kernel, if any) and return it. On a lab, ``await lab.start(part)`` attaches a part instead
        (:meth:`start_part`), and ``await Lab(...).start()`` starts that lab."""
        lab = cls(seed, **options)
        await lab._start()
        return lab

    async def start_part(self, part: P | None = None) -> P:
        """``await lab.start(part)``: the one way to attach a part (anything with ``start()`` and ``stop()``,
        see :class:`labkit.lifecycle.Component`). The part is started and returned; the lab owns it and
        stops it with everything else (or now, with :meth:`remove`). A part that needs the lab itself
        (services, proxies, the tracer) gets it first through its ``attach(lab)`` method, if it has one."""
        if part is None:  # Lab(...).start(): the lab itself, as a Component
            await self._start()
            return self  # type: ignore[return-value]
        self._check_running()
        if not callable(getattr(part, "start", None)) or not callable(getattr(part, "stop", None)):
            raise ValueError(f"part must have async start() and stop() methods (a labkit Component), got {part!r}")
        if part in self._owned:
            raise ValueError(f"part is already attached to this lab: {part!r}")
        attach = getattr(part, "attach", None)
        if callable(attach):
            attach(self)
        started = await part.start()
        self._owned.append(part)
        return part if started is None else started

    def unique(self, prefix: str = "lab") -> str:
        """A queue or exchange name no other run uses: ``lab.unique("orders")`` -> ``"orders-1a2b3c4d"``
        (several people may share one RabbitMQ)."""
        return unique(prefix)

    async def __aenter__(self) -> Lab:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    async def _start(self) -> None:
        if self._running:
            raise RuntimeError("this lab is already running")
        await _stop_current()
        Lab._current = self
        hints.install()  # a hint line under AMQP errors that name a refused deprecated feature
        self._loop = asyncio.get_running_loop()
        self._running = True
        async with stopped_on_failure(self):
            if self.amqp:
                await self._start_broker()
            self.http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # unbounded: open-loop load must not queue here
                timeout=aiohttp.ClientTimeout(total=self.http_timeout),
            )
            self.mark()

    async def stop(self) -> None:
        """Stop everything this lab started, newest first; safe to call twice."""
        if not self._running:
            return
        self._running = False
        if Lab._current is self:
            Lab._current = None
        existing = asyncio.all_tasks()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Users of the broker first, then the shared connection and HTTP session, the broker last.
        closers: list[Callable[[], Awaitable[Any]]] = [o.stop for o in reversed(self._owned)]
        for resource, verb in ((self._connection, "close"), (self.http, "close"), (self._broker, "stop")):
            if resource is not None:
                closers.append(getattr(resource, verb))
        self._owned.clear()
        self.services.clear()
        self.consumers.clear()
        self.proxies.clear()
        self._connection = self._default_channel = None
        self.http = None
        self._broker = None
        errors: list[str] = []
        for close in closers:
            try:
                await close()
            except Exception as exc:  # keep stopping the rest, then say what went wrong
                errors.append(f"{getattr(close, '__self__', close)!r}: {exc!r}")
        if self._data_dir is not None:
            self._data_dir()  # the broker has stopped: remove its data directory
            self._data_dir = None
        # Closing spawns clean-up tasks of its own (aiormq finishes a connection in a fire-and-forget task):
        # wait for them, so that when stop() returns nothing of the lab is still running.
        stragglers = asyncio.all_tasks() - existing
        if stragglers:
            await asyncio.wait(stragglers, timeout=2.0)
        if errors:
            # A warning, not an exception: the last cell of a chapter must not fail because, say, a
            # sampled queue was deleted before the lab stopped; everything else was still released.
            warnings.warn("while stopping the lab: " + "; ".join(errors), RuntimeWarning, stacklevel=2)

    @property
    def running(self) -> bool:
        return self._running

    def mark(self) -> Clock:
        """Start a new experiment timeline (t0 = now) and return its clock: pass it as ``t0`` to
        ``Recording``, ``load`` and fault schedules so everything is "seconds since the start"."""
        self.clock = Clock()
        return self.clock

    def reset_records(self) -> Clock:
        """Start a fresh experiment with the same parts: forget every service's and consumer's records
        and all spans, and start a new timeline (returned, as by :meth:`mark`)."""
        parts: list[Service | Consumer] = [*self.services.values(), *self.consumers]
        for part in parts:
            part.reset_records()
        self.tracer.clear()
        return self.mark()

    @property
    def t0(self) -> float:
        """Start of the current experiment (``time.monotonic()`` seconds)."""
        return self.clock.t0

    def now(self) -> float:
        """Seconds since ``t0``."""
        return self.clock.now()

    # -- background work -----------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task:
        """Run ``coro`` in the background, owned by the lab (cancelled by :meth:`stop`)."""
        self._check_running()
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def own(self, thing: Any) -> Any:
        """Hand the lab a part that is *already started* (anything with an async ``stop()``); the lab stops
        it with everything else. Returns ``thing``. Prefer :meth:`start` (``await lab.start(part)``), which
        starts the part too, so a part that fails to start is never left half-owned."""
        self._check_running()
        if not callable(getattr(thing, "stop", None)):
            raise ValueError(f"thing must have an async stop() method, got {thing!r}")
        if thing not in self._owned:
            self._owned.append(thing)
        return thing

    async def remove(self, thing: Any) -> None:
        """Stop one part of this lab now (service, consumer, proxy, sampler or a part attached with
        :meth:`start`); the rest keep running."""
        if thing not in self._owned:
            raise ValueError(
                f"thing must be a part of this lab (service, consumer, proxy, sampler or started), got {thing!r}"
            )
        await self._forget(thing)

    def __repr__(self) -> str:
        return lab_repr(self)

    def _repr_html_(self) -> str:
        return lab_html(self)

    # -- internals -----------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise RuntimeError("the lab is not running: start it with `lab = await Lab.start()`")

    async def _forget(self, thing: Any) -> None:
        self._owned.remove(thing)
        if thing in self.consumers:
            self.consumers.remove(thing)
        if thing in self.proxies:
            self.proxies.remove(thing)
        for name, svc in list(self.services.items()):
            if svc is thing:
                del self.services[name]
        await thing.stop()


async def _stop_current() -> None:
    """Stop the lab already running in this kernel. A lab started on another event loop (only possible
    outside a notebook, e.g. a test that forgot to stop its lab) cannot be awaited here: drop it."""
    current = Lab._current
    if current is None:
        return
    if current._loop is asyncio.get_running_loop():
        await current.stop()
    else:
        current._running = False
    Lab._current = None
