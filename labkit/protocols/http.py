"""JSON (base64) or raw bytes over HTTP/1.1: an aiohttp echo server and its client."""

from __future__ import annotations

import base64

import aiohttp
from aiohttp import web

from labkit._validate import non_negative, one_of
from labkit.lifecycle import HttpApp
from labkit.protocols._common import check_bytes, work

__all__ = ["HttpClient", "HttpEchoServer"]


class HttpEchoServer(HttpApp):
    """aiohttp on 127.0.0.1 answering after ``work_time``: ``POST /json`` echoes ``{"data": base64}``,
    ``POST /bytes`` echoes the raw body (same transport, no serialisation: the control experiment)."""

    client_max_size = 64 << 20  # payloads up to the largest size the chapter sends

    def __init__(self, work_time: float = 0.0):
        super().__init__(name="HTTP echo server")
        self.work_time = non_negative("work_time", work_time)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/json", self._json)
        router.add_post("/bytes", self._bytes)

    async def _json(self, request: web.Request) -> web.Response:
        data = base64.b64decode((await request.json())["data"])
        await work(self.work_time)
        return web.json_response({"data": base64.b64encode(data).decode("ascii")})

    async def _bytes(self, request: web.Request) -> web.Response:
        data = await request.read()
        await work(self.work_time)
        return web.Response(body=data, content_type="application/octet-stream")


class HttpClient:
    """Calls an :class:`HttpEchoServer` at ``url`` (its base URL) with ``encoding`` "json" (base64 in JSON)
    or "bytes" (the raw body); ``reuse=False``: a new TCP connection for every call."""

    def __init__(self, url: str, encoding: str = "json", reuse: bool = True):
        if not isinstance(url, str) or not url.startswith("http://"):
            raise ValueError(f"url must be an http:// URL, got {url!r}")
        self.encoding = one_of("encoding", encoding, ("json", "bytes"))
        self.url, self.reuse = url.rstrip("/") + "/" + encoding, bool(reuse)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=not reuse))

    async def call(self, data: bytes) -> bytes:
        data = check_bytes("data", data)
        if self.encoding == "bytes":
            async with self._session.post(self.url, data=data) as resp:
                resp.raise_for_status()
                return await resp.read()
        body = {"data": base64.b64encode(data).decode("ascii")}
        async with self._session.post(self.url, json=body) as resp:
            resp.raise_for_status()
            return base64.b64decode((await resp.json())["data"])

    async def stop(self) -> None:
        await self._session.close()
