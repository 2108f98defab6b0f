"""The lab's HTTP side: the services and fault proxies it starts, and the traced client calls to them.

Why a part of its own: :class:`labkit.lab.Lab` owns everything, but starting HTTP services, putting fault
proxies in front of them and calling them (traced, recorded into a history, failing loudly on a non-2xx
answer so load counts it) is one job, kept here so the lab itself stays about lifecycle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from labkit import tracing
from labkit._validate import port as check_port
from labkit._validate import positive
from labkit.history import recorder
from labkit.services import Service, is_success, target_url

__all__ = ["HTTPStatusError", "LabHttp"]


class HTTPStatusError(Exception):
    """A service answered with a non-2xx status (raised by :meth:`Lab.call`, so load counts a failure)."""

    def __init__(self, status: int, url: str, body: Any):
        self.status, self.url, self.body = status, url, body
        detail = body.get("error") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status} from {url}: {detail}")


class LabHttp:
    """The HTTP-facing methods of :class:`labkit.lab.Lab` (a base class; the lab provides the state)."""

    seed: int
    tracer: tracing.Tracer
    services: dict[str, Service]
    proxies: list[Any]
    http: aiohttp.ClientSession | None
    _amqp_port: Callable[[], int]  # from LabMessaging (an annotation only: it must not shadow that method)

    def _check_running(self) -> None:
        raise NotImplementedError

    async def start_part(self, part: Any = None) -> Any:
        raise NotImplementedError

    async def _forget(self, thing: Any) -> None:
        raise NotImplementedError

    # -- HTTP services -------------------------------------------------------------------------------

    async def service(self, name: str, **options: Any) -> Service:
        """Start the HTTP service ``name`` (see :class:`labkit.services.Service` for ``options``:
        service_time, distribution, capacity, queue_limit, failure_rate, downstream, parallel,
        connector_limit, timeout, retries, breaker, routes, handler, success_status). A service of the
        same name is replaced."""
        self._check_running()
        old = self.services.pop(name, None)
        if old is not None:
            await self._forget(old)
        svc = await self.start_part(Service(name, seed=self.seed, tracer=self.tracer, **options))
        self.services[name] = svc
        return svc

    async def proxy(self, target: Any, name: str | None = None) -> Any:
        """Start a fault proxy in front of ``target`` (a service, a port, or ``"amqp"`` for the broker).

        Point callers at the proxy (``downstream=[proxy]`` or ``proxy.port``) and switch faults on it.
        """
        self._check_running()
        if isinstance(target, str) and target == "amqp":
            upstream = self._amqp_port()
        elif isinstance(target, int) and not isinstance(target, bool):
            upstream = check_port("target", target)
        elif hasattr(target, "port"):
            upstream = target.port
        else:
            raise ValueError(f"target must be a Service, a port (1-65535) or 'amqp', got {target!r}")
        from labkit.faults import FaultProxy  # imported late: only chapters with faults need it

        proxy = await self.start_part(
            FaultProxy("127.0.0.1", upstream, name or getattr(target, "name", None) or f"proxy:{upstream}")
        )
        self.proxies.append(proxy)
        return proxy

    async def call(
        self,
        target: Any,
        path: str = "",
        *,
        body: bytes = b"",
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """POST to a service (or proxy, or URL) with a correlation id and return its JSON answer.

        Raises :class:`HTTPStatusError` on any status but 2xx (and aiohttp/timeout errors as they come),
        so it can be used directly as a load operation: ``op = lambda i: lab.call(order)``.
        """
        self._check_running()
        if not isinstance(path, str) or not isinstance(body, (bytes, bytearray)):
            raise ValueError(f"path must be a str and body bytes, got path={path!r} and a {type(body).__name__} body")
        url = target_url(target) + path.lstrip("/")
        span = self.tracer.start(f"client -> {getattr(target, 'name', url)}", "client", correlation_id)
        kwargs = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=positive("timeout", timeout))}
        ok, status, error = False, None, None
        if recorder.active is not None:
            recorder.on_http("request", None, url, span.correlation_id, target=self._lane(target, url))
        http = self.http
        if http is None:  # stopped by another task while this call was being prepared
            raise RuntimeError("the lab is not running: start it with `lab = await Lab.start()`")
        try:
            async with http.post(
                url, data=body, headers=tracing.http_headers(span.correlation_id, span.span_id), **kwargs
            ) as resp:
                status = resp.status
                raw = await resp.read()
                try:
                    answer = json.loads(raw)
                except ValueError:
                    answer = raw.decode(errors="replace")
                if not is_success(resp.status):
                    raise HTTPStatusError(resp.status, url, answer)
                ok = True
                return answer
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.tracer.finish(span, ok)
            if recorder.active is not None:
                recorder.on_http(
                    "response" if status is not None else "error",
                    None,
                    url,
                    span.correlation_id,
                    target=self._lane(target, url),
                    status=status,
                    error=None if error is None or status is not None else type(error).__name__,
                )

    def _lane(self, target: Any, url: str) -> str:
        """The name of what an HTTP call goes to (a service or the proxy in front of it), for a history."""
        name = getattr(target, "name", None)
        if name:
            return name
        port = URL(url).port
        return next((p.name for p in [*self.proxies, *self.services.values()] if p.port == port), url)
