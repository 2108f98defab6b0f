"""One proxied link: a client connection, its upstream connection, and a pipe each way.

Each :class:`Pipe` reads chunks as they come (stamped with their arrival time) and writes them through the
toxics that apply to its direction; a :class:`Connection` keeps, per toxic, whether it applies to this
connection (the toxicity drawn once), and tears both sides down together.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.faults.proxy import FaultProxy
    from labkit.faults.toxics import Toxic

__all__ = ["CHUNK", "Connection", "Pipe", "abort"]

CHUNK = 65536


def abort(writer: asyncio.StreamWriter) -> None:
    """Close a socket with RST (SO_LINGER 0), the way a crashed or firewalled peer looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Pipe:
    """One direction of a connection: a reader task queues chunks, a writer task applies toxics in order."""

    def __init__(self, conn: Connection, direction: str, reader: Any, writer: Any):
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
            data = await self.reader.read(CHUNK)
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


class Connection:
    """A client connection and its upstream connection, pumped both ways until both sides finish."""

    def __init__(self, proxy: FaultProxy, client: Any, upstream: Any):
        self.proxy = proxy
        (c_reader, self.client), (u_reader, self.upstream) = client, upstream
        self.pipes = (
            Pipe(self, "upstream", c_reader, self.upstream),
            Pipe(self, "downstream", u_reader, self.client),
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
        abort(self.client)
        abort(self.upstream)
