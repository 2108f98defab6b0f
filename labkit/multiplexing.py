"""One slow request among many: an HTTP/1.1 connection pool against HTTP/2 multiplexing (gRPC), plus
gRPC's server streaming and deadlines.

Why: HTTP/1.1 carries one request at a time per connection, so a client either opens a connection per
request in flight (a pool) or queues requests behind the one on the wire: a slow answer then holds up
every request behind it (*head-of-line blocking*). HTTP/2 multiplexes many requests as streams over one
connection, each answered when it is ready. The claim is about connections and waiting, not about bytes,
so the servers here do nothing but wait: ``GET /wait/<ms>`` over HTTP/1.1 (aiohttp) and the unary gRPC
method ``/labkit.Wait/Wait`` (grpc.aio, HTTP/2). Each counts the client connections it saw.

The same gRPC server has a server-streaming method, ``/labkit.Wait/Ticks``: one request, a stream of
answers as they are produced. Its messages are plain bytes (generic handlers, no generated code), so the
chapter can show the ``.proto`` a real service would compile without needing ``protoc`` here.

    servers = await lab.start(WaitServers())
    latencies = await http1_burst(servers.http_url, [300] + [5] * 15, pool=1)
    latencies = await grpc_burst(servers.grpc_target, [300] + [5] * 15)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import grpc
from aiohttp import web

from labkit._validate import integer, positive
from labkit.lifecycle import HttpApp

__all__ = ["WAIT_METHOD", "TICKS_METHOD", "WaitServers", "http1_burst", "grpc_burst", "ticks", "call_with_deadline"]

_SERVICE = "labkit.Wait"
WAIT_METHOD = f"/{_SERVICE}/Wait"
TICKS_METHOD = f"/{_SERVICE}/Ticks"
#: How long the first request of a burst is on the wire alone before the rest follow (s): it takes the
#: connection first, as a slow request that was simply sent first would.
HEAD_START = 0.02


def _delays(delays_ms: list[float]) -> list[float]:
    if not isinstance(delays_ms, (list, tuple)) or not delays_ms:
        raise ValueError(f"delays_ms must be a non-empty list of milliseconds, got {delays_ms!r}")
    return [positive(f"delays_ms[{i}]", d) for i, d in enumerate(delays_ms)]


class WaitServers(HttpApp):
    """An HTTP/1.1 server (this app) and a gRPC (HTTP/2) server on 127.0.0.1 that answer after the delay
    asked for.

    ``http_connections`` and ``grpc_connections`` are the sets of client addresses each has seen;
    ``cancelled`` counts gRPC calls the server stopped because their deadline passed.
    """

    def __init__(self, name: str = "wait servers") -> None:
        super().__init__(name=name)
        self.http_connections: set[Any] = set()
        self.grpc_connections: set[str] = set()
        self.cancelled = 0
        self._grpc: grpc.aio.Server | None = None
        self.grpc_port = 0

    @property
    def http_url(self) -> str:
        return f"{self.url}wait/"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/wait/{ms}", self._http_wait)

    async def on_start(self) -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    _SERVICE,
                    {
                        "Wait": grpc.unary_unary_rpc_method_handler(self._grpc_wait),
                        "Ticks": grpc.unary_stream_rpc_method_handler(self._grpc_ticks),
                    },
                )
            ]
        )
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._grpc = server

    async def on_stop(self) -> None:
        server, self._grpc = self._grpc, None
        if server is not None:
            await server.stop(grace=None)

    async def _http_wait(self, request: web.Request) -> web.Response:
        self.http_connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        await asyncio.sleep(float(request.match_info["ms"]) / 1000)
        return web.Response(text="done")

    async def _grpc_wait(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.grpc_connections.add(context.peer())
        try:
            await asyncio.sleep(float(request.decode()) / 1000)
        except asyncio.CancelledError:  # the client's deadline passed: gRPC cancels the server's work too
            self.cancelled += 1
            raise
        return b"done"

    async def _grpc_ticks(self, request: bytes, context: grpc.aio.ServicerContext):
        count, every_ms = (int(x) for x in request.decode().split(","))
        for k in range(count):
            await asyncio.sleep(every_ms / 1000)
            yield str(k).encode()


async def _burst(one, delays_ms: list[float]) -> list[float]:
    """Start the first request, then the rest HEAD_START later, all concurrently: each one's latency (s)."""

    async def timed(ms: float) -> float:
        started = time.monotonic()
        await one(ms)
        return time.monotonic() - started

    first = asyncio.ensure_future(timed(delays_ms[0]))
    await asyncio.sleep(HEAD_START)
    return list(await asyncio.gather(first, *(timed(ms) for ms in delays_ms[1:])))


async def http1_burst(url: str, delays_ms: list[float], *, pool: int) -> list[float]:
    """Send one GET per delay over HTTP/1.1 with at most ``pool`` connections: latencies (s), in order."""
    delays = _delays(delays_ms)
    integer("pool", pool, 1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool)) as session:

        async def one(ms: float) -> None:
            async with session.get(f"{url}{ms:g}") as response:
                await response.read()

        return await _burst(one, delays)


async def grpc_burst(target: str, delays_ms: list[float]) -> list[float]:
    """Make one unary gRPC call per delay over a single channel (HTTP/2, one connection): latencies (s)."""
    delays = _delays(delays_ms)
    async with grpc.aio.insecure_channel(target) as channel:
        wait = channel.unary_unary(WAIT_METHOD)

        async def one(ms: float) -> None:
            await wait(f"{ms:g}".encode())

        return await _burst(one, delays)


async def ticks(target: str, count: int, every_ms: float) -> list[float]:
    """A server-streaming call: ``count`` messages, one every ``every_ms``. When each arrived (s after the call)."""
    integer("count", count, 1)
    positive("every_ms", every_ms)
    async with grpc.aio.insecure_channel(target) as channel:
        started = time.monotonic()
        call = channel.unary_stream(TICKS_METHOD)(f"{count},{int(every_ms)}".encode())
        return [time.monotonic() - started async for _ in call]


async def call_with_deadline(target: str, work_ms: float, deadline_s: float) -> tuple[str, float]:
    """A unary call whose work takes ``work_ms`` under a ``deadline_s`` deadline: (status name, seconds)."""
    positive("work_ms", work_ms)
    positive("deadline_s", deadline_s)
    async with grpc.aio.insecure_channel(target) as channel:
        started = time.monotonic()
        try:
            await channel.unary_unary(WAIT_METHOD)(f"{work_ms:g}".encode(), timeout=deadline_s)
            status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            status = error.code()
        return status.name, time.monotonic() - started
