"""The fault proxy's listening socket on 127.0.0.1, which can stop listening and still hold its port.

Why: a link that is down must refuse connections the way a closed port does, yet come back up on the
same port, so that callers keep the address they were given. Holding the port while refusing is socket
craft apart from forwarding bytes; :class:`labkit.faults.FaultProxy` only says when to listen.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

__all__ = ["Listener"]

OnConnect = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listener:
    """Listens on 127.0.0.1:``port`` (0: an ephemeral one, then ``port`` says which) and serves each
    connection with ``on_connect``; :meth:`refuse` stops listening but keeps the port."""

    def __init__(self, port: int, on_connect: OnConnect):
        self.port = port
        self._on_connect = on_connect
        self._sock: socket.socket | None = None
        self._reserved: socket.socket | None = None  # holds the port while refusing (see _reserve_port)
        self._server: asyncio.AbstractServer | None = None
        self._serving: set[asyncio.Task] = set()

    def open(self) -> None:
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

    async def started(self) -> None:
        """Wait until the server opened by :meth:`open` is serving."""
        await asyncio.gather(*self._serving)

    def refuse(self) -> None:
        """Stop listening, and hold the port so that connection attempts are refused until :meth:`open`."""
        self._close()
        self._reserve_port()

    async def stop(self) -> None:
        """Stop listening, free the port, and wait for a server still starting to close."""
        self._close()
        self._release_port()
        await asyncio.gather(*self._serving, return_exceptions=True)

    def _reserve_port(self) -> None:
        """Keep the port while down with a socket that is bound but does not listen.

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
        server = await asyncio.start_server(self._on_connect, sock=sock)
        if self._sock is sock:
            self._server = server
        else:  # closed (down or stop) while starting: asyncio's Server.close() unregisters and closes it
            server.close()

    def _close(self) -> None:
        """Stop listening: connection attempts are refused from here on.

        A listener still starting is closed by its ``_serve`` task (never cancelled midway, which could
        leave a closed socket registered with the event loop).
        """
        if self._server is not None:
            self._server.close()
        self._server = None
        self._sock = None
