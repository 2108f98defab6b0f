"""Small aiohttp services for the course's running story (a checkout: order, payment, inventory, ...).

Why: every chapter needs a downstream that is *really* slow, *really* full or *really* failing, on a real
socket, so that what the reader measures is what a real client would see. One configurable service type
covers them all:

- ``service_time`` -- mean seconds of work per request, ``distribution`` "fixed" or "exponential"
  (seeded, so runs are reproducible);
- ``capacity`` -- how many requests it works on at once; excess requests wait in line, and with
  ``queue_limit`` set, requests beyond that line are turned away at once with 503 (load shedding);
- ``failure_rate`` -- the probability that a request fails with 500 after doing its work (seeded);
- ``downstream`` -- other services it calls over HTTP for every request (a chain A -> B -> C), with its
  own aiohttp connector ``connector_limit`` (connection pool size) and ``timeout``; any downstream
  failure makes this request fail with 502 (504 on timeout), as an unprotected synchronous chain does;
- ``retries`` with ``backoff`` (a :func:`labkit.theory.backoff_schedule` kind) and a circuit ``breaker``
  per downstream -- the cures of the cascading-failure chapter, and their side effects (retry storms);
- ``routes`` -- which downstreams a request path needs (``{"/browse": ["catalog"]}``), so that one
  service can serve requests that need a slow dependency next to requests that do not, sharing its
  connection pool: the setting in which a failure cascades to requests that never touch it.

Each service counts requests in flight over time and keeps one :class:`labkit.metrics.Record` per request
(``scheduled`` = arrival, ``start`` = admitted to work, ``end`` = response ready; ``info`` has the status and
the request path), and takes part in tracing.
Services are started by :meth:`labkit.lab.Lab.service`, which owns and stops them.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from labkit import theory, tracing
from labkit._validate import integer, one_of, positive, probability
from labkit._validate import port as check_port
from labkit.draws import DISTRIBUTIONS, rng_for, sampler
from labkit.history import recorder
from labkit.lifecycle import HttpApp
from labkit.metrics import Clock, Record, as_t0
from labkit.resilience import Admission, CircuitBreaker

# DISTRIBUTIONS, rng_for, sampler (labkit.draws) and CircuitBreaker (labkit.resilience) stay importable from here.
__all__ = ["DISTRIBUTIONS", "STORY", "CircuitBreaker", "Service", "is_success", "rng_for", "sampler", "target_url"]

#: Default mean service time (seconds) of each service in the checkout story: the email and
#: fulfillment steps are the slow ones, which is why the course moves them off the critical path.
STORY: dict[str, float] = {
    "order": 0.010,
    "payment": 0.050,
    "inventory": 0.020,
    "fraud": 0.030,
    "email": 0.100,
    "analytics": 0.020,
    "fulfillment": 0.080,
}


#: Marks "leave this setting as it is" in :meth:`Service.configure` (where None means "unlimited").
KEEP: Any = object()

#: Signature of an optional per-request hook: gets the request body (bytes), returns extra JSON fields.
Handler = Callable[[bytes], Awaitable["dict[str, Any] | None"]]


def target_url(target: Any) -> str:
    """The HTTP base URL of a downstream: a URL string, a :class:`Service`, or anything with ``.port``
    (a fault proxy)."""
    if isinstance(target, str):
        if not target.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"downstream must be an http://127.0.0.1:PORT URL, got {target!r}")
        return target
    target_port = getattr(target, "port", None)
    if target_port is None:
        raise ValueError(f"downstream must be a URL, a Service or a proxy with .port, got {target!r}")
    return f"http://127.0.0.1:{check_port('downstream port', target_port)}/"


class Service(HttpApp):
    """One named HTTP service on ``127.0.0.1`` (an ephemeral port unless ``port`` is given).

    Every path and method is served by the same work (only ``routes`` picks the downstreams per path):
    ``POST {url}anything`` returns
    ``{"service", "correlation_id", "ok", "error", "downstream": [...]}`` with status ``success_status``
    (200, or e.g. 202 Accepted for a service that only queues the work), 500 (injected failure),
    502/504 (downstream failed/timed out) or 503 (line full).
    """

    def __init__(
        self,
        name: str,
        *,
        service_time: float | None = None,
        distribution: str = "fixed",
        capacity: int | None = None,
        queue_limit: int | None = None,
        failure_rate: float = 0.0,
        downstream: Sequence[Any] = (),
        parallel: bool = False,
        connector_limit: int = 100,
        timeout: float | None = None,
        retries: int = 0,
        backoff: str = "full_jitter",
        backoff_base: float = 0.05,
        backoff_cap: float = 1.0,
        breaker: dict[str, Any] | None = None,
        routes: dict[str, Sequence[str]] | None = None,
        handler: Handler | None = None,
        success_status: int = 200,
        seed: int = 0,
        port: int = 0,
        tracer: tracing.Tracer | None = None,
        max_records: int = 200_000,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        super().__init__(name=name, port=port)
        self._rng = rng_for(seed, name)
        self.service_time, self.distribution, self.failure_rate = 0.0, "fixed", 0.0
        self.capacity: int | None = None
        self.queue_limit: int | None = None
        self._admission = Admission(None, None)
        self.configure(
            service_time=STORY.get(name, 0.0) if service_time is None else service_time,
            distribution=distribution,
            capacity=capacity,
            queue_limit=queue_limit,
            failure_rate=failure_rate,
        )
        self.downstream = [(getattr(t, "name", None) or target_url(t), target_url(t)) for t in downstream]
        self.parallel = bool(parallel)
        self.connector_limit = integer("connector_limit", connector_limit, 1)
        self.timeout = None if timeout is None else positive("timeout", timeout)
        self.retries = integer("retries", retries, 0)
        self.backoff = one_of("backoff", backoff, theory.BACKOFF_KINDS)
        self.backoff_base = positive("backoff_base", backoff_base)
        self.backoff_cap = positive("backoff_cap", backoff_cap, allow_inf=True)
        if breaker is not None and (
            not isinstance(breaker, dict) or not set(breaker) <= {"failure_threshold", "reset_timeout"}
        ):
            raise ValueError(
                f"breaker must be a dict like {{'failure_threshold': 5, 'reset_timeout': 1.0}} or None, got {breaker!r}"
            )
        #: one circuit breaker per downstream (by name), if ``breaker`` settings were given
        self.breakers = (
            {label: CircuitBreaker(**breaker) for label, _ in self.downstream} if breaker is not None else {}
        )
        #: request path -> the downstream names it calls; paths not listed call every downstream
        self.routes = _check_routes(routes, [label for label, _ in self.downstream])
        if handler is not None and not callable(handler):
            raise ValueError(f"handler must be an async function handler(body) -> dict | None, got {handler!r}")
        self.handler = handler
        self.success_status = integer("success_status", success_status, 200, 299)
        self.tracer = tracer
        self.max_records = integer("max_records", max_records, 1)
        self.records: collections.deque[Record] = collections.deque(maxlen=self.max_records)
        self.in_flight = 0
        self.max_in_flight = 0
        self._in_flight_log: collections.deque[tuple[float, int]] = collections.deque(maxlen=self.max_records)
        self._session: aiohttp.ClientSession | None = None

    # -- configuration -------------------------------------------------------------------------------

    def configure(
        self,
        *,
        service_time: float | None = None,
        distribution: str | None = None,
        capacity: Any = KEEP,
        queue_limit: Any = KEEP,
        failure_rate: float | None = None,
    ) -> None:
        """Change behaviour while running (e.g. from a widget or at a point of an experiment).

        Arguments left out keep their value; ``capacity=None`` means unlimited and ``queue_limit=None``
        an unbounded line.
        """
        # validate everything first, so that a bad argument changes nothing
        mean = self.service_time if service_time is None else service_time
        dist = self.distribution if distribution is None else distribution
        draw = sampler(mean, dist, self._rng)
        rate = self.failure_rate if failure_rate is None else probability("failure_rate", failure_rate)
        cap = self.capacity if capacity is KEEP else capacity
        limit = self.queue_limit if queue_limit is KEEP else queue_limit
        if cap is not None:
            integer("capacity", cap, 1)
        if limit is not None:
            integer("queue_limit", limit, 0)
        self._sample, self.service_time, self.distribution, self.failure_rate = draw, mean, dist, rate
        self.capacity, self.queue_limit = cap, limit
        self._admission.resize(cap, limit)

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Requests currently waiting for a free slot."""
        return self._admission.waiting

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self._handle)

    async def on_start(self) -> None:
        if self.downstream:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connector_limit),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )

    async def on_stop(self) -> None:
        """After the listening socket closed and requests still running were cancelled: close the
        downstream pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- observation ---------------------------------------------------------------------------------

    def in_flight_timeline(self, t0: Clock | float | None = None) -> tuple[list[float], list[int]]:
        """``(times, counts)``: requests in flight (working or waiting) after every change; times are
        seconds since ``t0`` (a Clock such as ``lab.clock``, or a monotonic time; default: the first
        change). Plot with ``plots.timeline(..., step=True)``."""
        log = list(self._in_flight_log)
        if not log:
            return [], []
        base = log[0][0] if t0 is None else as_t0(t0)
        return [t - base for t, _ in log], [n for _, n in log]

    def reset_records(self) -> None:
        """Forget records and the in-flight history (between experiments)."""
        self.records.clear()
        self._in_flight_log.clear()
        self.max_in_flight = self.in_flight

    def __repr__(self) -> str:
        where = self.url if self._runner else "stopped"
        return f"<Service {self.name} {where} service_time={self.service_time}s capacity={self.capacity}>"

    # -- request handling ----------------------------------------------------------------------------

    def _count(self, delta: int) -> None:
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._in_flight_log.append((time.monotonic(), self.in_flight))

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        correlation_id, parent_id = tracing.from_http(request.headers)
        span = self.tracer.start(self.name, "server", correlation_id, parent_id) if self.tracer is not None else None
        correlation_id = span.correlation_id if span else (correlation_id or tracing.new_id())
        body = await request.read()
        self._count(+1)
        status, error, started, extra, calls = 503, "overloaded: waiting line full", arrived, {}, []
        try:
            if await self._admission.acquire():
                started = time.monotonic()
                try:
                    status, error, extra, calls = await self._work(body, request.path, correlation_id, span)
                finally:
                    self._admission.release()
        finally:
            self._count(-1)
        ended = time.monotonic()
        ok = is_success(status)
        info = {"service": self.name, "status": status, "correlation_id": correlation_id, "path": request.path}
        self.records.append(Record(arrived, started, ended, ok, error, info))
        if span is not None and self.tracer is not None:
            self.tracer.finish(span, ok, status=status, waited=started - arrived)
        payload = {
            "service": self.name,
            "correlation_id": correlation_id,
            "ok": ok,
            "error": error,
            "downstream": calls,
            **extra,
        }
        return web.json_response(payload, status=status, headers={tracing.CORRELATION_HEADER: correlation_id})

    async def _work(self, body: bytes, path: str, correlation_id: str, span: tracing.Span | None):
        """Own work, then the injected failure roll, then the hook, then the downstream calls (those
        ``routes`` names for ``path``, else all)."""
        await asyncio.sleep(self._sample())
        if self.failure_rate and self._rng.random() < self.failure_rate:
            return 500, "injected failure", {}, []
        extra: dict[str, Any] = {}
        if self.handler is not None:
            try:
                with tracing.activate(span):  # calls/publishes made by the hook join this trace
                    extra = dict(await self.handler(body) or {})
            except Exception as exc:  # the hook's failure is this request's failure, as in a real service
                return 500, f"handler failed: {exc!r}", {}, []
        route = self.routes.get(path)
        targets = (
            self.downstream if route is None else [(label, url) for label, url in self.downstream if label in route]
        )
        if not targets:
            return self.success_status, None, extra, []
        parent = span.span_id if span else None
        if self.parallel:
            calls = list(await asyncio.gather(*(self._call(*t, correlation_id, parent) for t in targets)))
        else:
            calls = []
            for label, url in targets:
                calls.append(await self._call(label, url, correlation_id, parent))
                if not is_success(calls[-1]["status"]):
                    break  # a synchronous chain stops at the first failure
        failed = [c for c in calls if not is_success(c["status"])]
        if not failed:
            return self.success_status, None, extra, calls
        status = 504 if any(c["status"] == 504 for c in failed) else 502
        return status, f"downstream {failed[0]['name']} failed: {failed[0]['error']}", extra, calls

    async def _call(self, label: str, url: str, correlation_id: str, parent: str | None) -> dict[str, Any]:
        """One downstream call with this service's retries and circuit breaker; never raises: failures
        come back as a status and an error text. 4xx answers are not retried (retrying cannot help)."""
        breaker = self.breakers.get(label)
        delays = (
            theory.backoff_schedule(
                self.backoff, self.backoff_base, self.backoff_cap, self.retries, seed=self._rng.getrandbits(32)
            )
            if self.retries
            else []
        )
        attempts = 0
        error: str | None
        while True:
            if breaker is not None and not breaker.allow():
                status, error = 503, "circuit open: not called"
                break
            attempts += 1
            status, error = await self._attempt(label, url, correlation_id, parent)
            if breaker is not None:
                breaker.record(is_success(status))
            if status < 500 or attempts > len(delays):
                break
            await asyncio.sleep(delays[attempts - 1])
        return {"name": label, "url": url, "status": status, "error": error, "attempts": attempts}

    async def _attempt(self, label: str, url: str, correlation_id: str, parent: str | None) -> tuple[int, str | None]:
        tracer = self.tracer
        span = tracer.start(f"{self.name} -> {label}", "client", correlation_id, parent) if tracer is not None else None
        headers = tracing.http_headers(correlation_id, span.span_id if span else parent)
        if recorder.active is not None:
            recorder.on_http("request", self.name, url, correlation_id, target=label)
        session = self._session
        if session is None:
            raise RuntimeError(f"service {self.name!r} is not running: start it before it calls other services")
        answered = False
        try:
            async with session.post(url, headers=headers) as resp:
                await resp.read()
                status, error, answered = resp.status, None if is_success(resp.status) else f"HTTP {resp.status}", True
        except asyncio.TimeoutError:
            status, error = 504, f"timeout after {self.timeout}s"
        except aiohttp.ClientError as exc:
            status, error = 502, f"{type(exc).__name__}: {exc}"
        if recorder.active is not None:
            recorder.on_http(
                "response" if answered else "error",
                self.name,
                url,
                correlation_id,
                target=label,
                status=status if answered else None,
                error=None if answered else error,
            )
        if span is not None and tracer is not None:
            tracer.finish(span, is_success(status), status=status)
        return status, error


def _check_routes(routes: Any, labels: list[str]) -> dict[str, frozenset[str]]:
    """Validate ``routes`` ({"/path": [downstream names]}) against the service's downstream names."""
    if routes is None:
        return {}
    rule = f"a dict {{'/path': [downstream names]}} with names from {labels}"
    if not isinstance(routes, dict):
        raise ValueError(f"routes must be {rule}, got {routes!r}")
    checked = {}
    for path, names in routes.items():
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or isinstance(names, str)
            or not isinstance(names, Sequence)
            or not set(names) <= set(labels)
        ):
            raise ValueError(f"routes must be {rule}, got {path!r}: {names!r}")
        checked[path] = frozenset(names)
    return checked


def is_success(status: int) -> bool:
    """2xx: what HTTP clients (and :meth:`labkit.lab.Lab.call`) count as success, e.g. 202 Accepted."""
    return 200 <= status < 300
