"""A tiny JSON admin endpoint over a running Broker: GET /api/queues, GET /api/overview, POST /api/reset,
and the part of RabbitMQ's management API that provisions a class (PUT/DELETE /api/vhosts/V,
/api/users/U, /api/permissions/V/U, PUT /api/user-limits/U/max-channels).

Why it exists: the broker runs in its own process (see bench/broker.py), so the kernel needs a way to
ask it "how deep are the queues?" and "start from a clean slate" without speaking AMQP. A reader can use
it too: ``curl http://127.0.0.1:PORT/api/queues``.

Why it is hand-written instead of aiohttp: importing ``aiohttp.web`` costs about 14 MB of RSS (measured
here: the idle broker process is 25.3 MB with this endpoint, 39.2 MB with aiohttp.web imported), which
alone would use up the broker's 40 MB idle budget. Three routes on loopback need a request line, a Content-Length and ``Connection: close``,
nothing more. It binds 127.0.0.1 only: the endpoint can wipe every queue and has no authentication
(a client's Basic credentials are accepted and ignored).

Why provisioning speaks rabbitmq_management's paths and bodies rather than a Python-only API: the broker
runs in its own process, so the kernel needs a wire API anyway, and with the same paths one HTTP client
(labkit.classroom's) provisions a class on RabbitMQ and on the embedded broker alike. The operations
themselves are ``broker.auth``'s functions (labkit/broker/auth.py), usable directly in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from .._validate import port as check_port
from .._validate import positive

__all__ = ["AdminServer"]

HOST = "127.0.0.1"
MAX_HEAD = 8192  # bytes of request line + headers we accept
MAX_BODY = 65536  # POST /api/reset needs no body; anything bigger is not ours

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class AdminServer:
    """Serve a Broker's introspection API as JSON on ``http://127.0.0.1:<port>/``.

    ``broker`` is a ``labkit.broker.Broker`` (``queues()``, ``overview()``, ``await reset()``); ``port=0``
    picks a free port. Every response closes its connection, so ``stop()`` never waits on idle
    keep-alive clients.
    """

    def __init__(self, broker: Any, port: int = 0, *, request_timeout: float = 5.0) -> None:
        self.broker = broker
        self._requested_port = check_port("port", port, allow_zero=True)
        self.request_timeout = positive("request_timeout", request_timeout)
        self._server: asyncio.Server | None = None
        self._started = time.monotonic()
        self._routes: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {
            "/api/queues": {"GET": self._queues},
            "/api/overview": {"GET": self._overview},
            "/api/reset": {"POST": self._reset},
        }
        # Management routes with names in the path: (first segment, number of names) -> method -> handler.
        self._resources: dict[tuple[str, int], dict[str, Callable[..., Any]]] = {
            ("vhosts", 1): {"PUT": self._put_vhost, "DELETE": self._delete_vhost},
            ("users", 1): {"PUT": self._put_user, "DELETE": self._delete_user},
            ("permissions", 2): {"PUT": self._put_permissions, "DELETE": self._delete_permissions},
            ("user-limits", 2): {"PUT": self._put_user_limit},
        }

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("AdminServer already started")
        self._server = await asyncio.start_server(self._handle, HOST, self._requested_port, limit=MAX_HEAD)
        self._started = time.monotonic()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("AdminServer not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    async def stop(self) -> None:
        """Stop listening and wait for in-flight requests (each is bounded by request_timeout)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    # --- routes -------------------------------------------------------------------------------------

    async def _queues(self) -> list[dict[str, Any]]:
        queues: list[dict[str, Any]] = self.broker.queues()
        return queues

    async def _overview(self) -> dict[str, Any]:
        return {**self.broker.overview(), "pid": os.getpid(), "uptime_s": round(time.monotonic() - self._started, 3)}

    async def _reset(self) -> dict[str, bool]:
        await self.broker.reset()
        return {"reset": True}

    def _put_vhost(self, body: dict[str, Any], name: str) -> None:
        self.broker.auth.add_vhost(name)

    def _delete_vhost(self, body: dict[str, Any], name: str) -> None:
        self.broker.auth.delete_vhost(name)

    def _put_user(self, body: dict[str, Any], name: str) -> None:
        self.broker.auth.add_user(name, body.get("password"), body.get("tags") or "")

    def _delete_user(self, body: dict[str, Any], name: str) -> None:
        self.broker.auth.delete_user(name)

    def _put_permissions(self, body: dict[str, Any], vhost: str, user: str) -> None:
        self.broker.auth.set_permissions(vhost, user, *(body.get(k, "") for k in ("configure", "write", "read")))

    def _delete_permissions(self, body: dict[str, Any], vhost: str, user: str) -> None:
        self.broker.auth.clear_permissions(vhost, user)

    def _put_user_limit(self, body: dict[str, Any], user: str, limit: str) -> None:
        self.broker.auth.set_user_limit(user, limit, body.get("value"))

    def _manage(self, method: str, path: str, body: bytes) -> bool:
        """Run a management route (True), or say the path is not one (False)."""
        parts = [unquote(part) for part in path.split("?", 1)[0].split("/")[2:]]
        handlers = self._resources.get((parts[0], len(parts) - 1)) if parts else None
        if handlers is None:
            return False
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(handlers)
            raise _HTTPError(405, f"{path} allows {allowed}, got {method}", {"Allow": allowed})
        try:
            payload = json.loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            handler(payload, *parts[1:])
        except KeyError as exc:
            raise _HTTPError(404, str(exc.args[0])) from None
        except ValueError as exc:
            raise _HTTPError(400, str(exc)) from None
        return True

    # --- HTTP ---------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                (status, payload), headers = await asyncio.wait_for(self._respond(reader), self.request_timeout), {}
            except _HTTPError as exc:
                status, payload, headers = exc.status, {"error": exc.message}, exc.headers
            except asyncio.TimeoutError:
                status, payload, headers = 408, {"error": "request not received in time"}, {}
            except Exception as exc:  # a broken broker call must answer 500, not kill the endpoint
                status, payload, headers = 500, {"error": f"{type(exc).__name__}: {exc}"}, {}
            writer.write(_response(status, payload, headers))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell it
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _HTTPError(413, f"request head larger than {MAX_HEAD} bytes") from None
        except asyncio.IncompleteReadError:
            raise _HTTPError(400, "incomplete request") from None
        method, path, length = _parse_head(head)
        if length > MAX_BODY:
            raise _HTTPError(413, f"body larger than {MAX_BODY} bytes")
        body = await reader.readexactly(length) if length else b""
        if self._manage(method, path, body):
            return 204, None
        handlers = self._routes.get(path.split("?", 1)[0])
        if handlers is None:
            raise _HTTPError(404, f"no route {path!r}; try {', '.join(self._routes)}")
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(handlers)
            raise _HTTPError(405, f"{path} allows {allowed}, got {method}", {"Allow": allowed})
        return 200, await handler()


def _parse_head(head: bytes) -> tuple[str, str, int]:
    """(method, path, content_length) from an HTTP/1.x request head."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = lines[0].split(" ")
    except ValueError:
        raise _HTTPError(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise _HTTPError(400, f"unsupported protocol {version!r}")
    length = 0
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise _HTTPError(400, "Content-Length must be an integer") from None
            if length < 0:
                raise _HTTPError(400, "Content-Length must be >= 0")
    return method, path, length


def _response(status: int, payload: Any, headers: dict[str, str]) -> bytes:
    body = b"" if status == 204 else json.dumps(payload).encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
