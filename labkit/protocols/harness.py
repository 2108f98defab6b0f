"""All three protocols for a lab (:class:`Protocols`) and a fair timing of their clients (:func:`interleaved`)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, non_negative, queue_name
from labkit.lifecycle import Part, stopped_on_failure
from labkit.metrics import Record, Recording
from labkit.protocols._common import payload
from labkit.protocols.amqp import AmqpClient, AmqpEchoWorker
from labkit.protocols.grpc import GrpcClient, GrpcEchoServer
from labkit.protocols.http import HttpClient, HttpEchoServer

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Call", "Protocols", "interleaved"]


Call = Callable[[bytes], Awaitable[bytes]]


class Protocols(Part):
    """The three echo servers (same ``work_time``) and a client of each, started together, stopped together.

    ``calls(reuse=True)`` maps a label to ``await call(payload)``: "HTTP/1.1 + JSON", "HTTP/1.1 + bytes",
    "gRPC", "AMQP RPC" and,
    with ``one_way=True``, "AMQP publish" (returns when the broker confirms; the worker answers no one).
    ``calls(reuse=False)`` gives clients that open a new connection (or channel) per call.
    ``http_url``/``grpc_target`` let a caller point extra clients elsewhere, e.g. through a fault proxy.
    """

    HTTP, HTTP_BYTES, GRPC = "HTTP/1.1 + JSON", "HTTP/1.1 + bytes", "gRPC"
    AMQP_RPC, AMQP_PUBLISH = "AMQP RPC", "AMQP publish"
    name = "protocols"

    def __init__(self, amqp_url: str, work_time: float = 0.0, queue: str | None = None):
        self.amqp_url = check_amqp_url("amqp_url", amqp_url)
        self.work_time = non_negative("work_time", work_time)
        self.queue = queue_name("queue", queue) if queue is not None else f"labkit-echo-{uuid.uuid4().hex[:8]}"
        self.http = HttpEchoServer(work_time)
        self.grpc = GrpcEchoServer(work_time)
        self.worker = AmqpEchoWorker(self.amqp_url, self.queue, work_time)
        self._clients: dict[bool, dict[str, Any]] = {}
        self._started: list[Any] = []

    async def start(self) -> Self:
        """Start the three servers (``await lab.start(Protocols(lab.amqp_url))`` in a chapter)."""
        self._check_stopped()
        async with stopped_on_failure(self):
            for server in (self.http, self.grpc, self.worker):
                await server.start()
                self._started.append(server)
        return self

    @property
    def running(self) -> bool:
        return bool(self._started)

    @property
    def http_url(self) -> str:
        return self.http.url

    @property
    def grpc_target(self) -> str:
        return self.grpc.target

    async def clients(self, reuse: bool = True) -> dict[str, Any]:
        """One client per protocol (created on first use, closed by :meth:`stop`)."""
        if reuse not in self._clients:
            amqp = await AmqpClient(self.amqp_url, self.queue, reuse=reuse).start()
            self._clients[reuse] = {
                self.HTTP: HttpClient(self.http_url, "json", reuse),
                self.HTTP_BYTES: HttpClient(self.http_url, "bytes", reuse),
                self.GRPC: GrpcClient(self.grpc_target, reuse),
                self.AMQP_RPC: amqp,
            }
        return self._clients[reuse]

    async def calls(self, reuse: bool = True, one_way: bool = False) -> dict[str, Call]:
        clients = await self.clients(reuse)
        calls = {name: client.call for name, client in clients.items()}
        if one_way:
            calls[self.AMQP_PUBLISH] = clients[self.AMQP_RPC].send
        return calls

    async def stop(self) -> None:
        clients = [c for group in self._clients.values() for c in group.values()]
        self._clients.clear()
        for thing in [*clients, *reversed(self._started)]:
            await thing.stop()
        self._started.clear()


async def interleaved(
    calls: Mapping[str, Call],
    sizes: Sequence[int],
    repeats: int | Mapping[int, int],
    *,
    check: bool = True,
    warmup: int = 2,
    progress: bool | None = True,
    seed: int = 0,
) -> Recording:
    """Time ``repeats`` sequential calls of each client per payload size, the clients taking turns.

    Taking turns (in a rotating order) means a burst of load from other programs hits every protocol
    alike, so ratios measured inside one run are fair. ``repeats`` is a count, or ``{size: count}``.
    Each record's ``info`` has ``protocol`` and ``size``; with ``check`` the echo must equal the payload.
    ``warmup`` unrecorded calls per client come first (first calls pay for lazy set-up: connections,
    HTTP/2 settings, code paths warming up).
    """
    if not calls:
        raise ValueError("calls must map at least one name to an async call, got {}")
    sizes = [integer("sizes[]", s, 0, 64 << 20) for s in sizes]
    if not sizes:
        raise ValueError("sizes must list at least one payload size in bytes, got []")
    counts = {s: integer("repeats", repeats if isinstance(repeats, int) else repeats.get(s, 0), 1) for s in sizes}
    from tqdm.auto import tqdm  # imported late: only runs with a progress bar need it

    names = list(calls)
    integer("warmup", warmup, 0)
    for _ in range(warmup):
        for name in names:
            await calls[name](payload(sizes[0], seed))
    bar = tqdm(
        total=sum(counts.values()) * len(names),
        desc="calls",
        unit="call",
        disable=None if progress is None else not progress,
    )
    records: list[Record] = []
    try:
        for size in sizes:
            data = payload(size, seed)
            for k in range(counts[size]):
                turn = k % len(names)
                for name in itertools.chain(names[turn:], names[:turn]):
                    start = time.monotonic()
                    try:
                        answer = await calls[name](data)
                        ok, error = (not check or answer == data), None
                        if not ok:
                            error = f"echo differs ({len(answer)} bytes back for {size})"
                    except Exception as exc:  # a failed call is a record, not the end of the run
                        ok, error = False, f"{type(exc).__name__}: {exc}"
                    end = time.monotonic()
                    records.append(Record(start, start, end, ok, error, {"protocol": name, "size": size}))
                    bar.update()
    finally:
        bar.close()
    return Recording(records)
