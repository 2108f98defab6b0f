"""One operation, three protocols: JSON over HTTP/1.1, protobuf over HTTP/2 (gRPC), and a broker hop (AMQP).

Why: "gRPC is faster than REST" and "a queue costs a hop" are claims about *protocols*, so the chapter that
tests them must run the same operation through each one with nothing else changed. The operation is an
echo of a byte payload after ``work_time`` seconds of (simulated) work:

- :class:`HttpEchoServer` / :class:`HttpClient`: aiohttp, ``POST /json`` with ``{"data": base64}`` both
  ways (JSON has no bytes type, so the payload is base64-encoded: a third larger and encoded twice per trip,
  as real JSON APIs carrying binary do), and ``POST /bytes`` with the raw payload, which separates the cost
  of serialisation from the cost of HTTP/1.1. ``reuse=False`` opens a new TCP connection per call.
- :class:`GrpcEchoServer` / :class:`GrpcClient`: grpcio's asyncio API, unary method ``/labkit.Echo/Echo``
  with a protobuf message ``labkit.Blob {bytes data = 1;}``. The message class is built at import time from
  a descriptor, so no code generation (grpcio-tools) is needed. ``reuse=False`` opens a channel per call.
- :class:`AmqpEchoWorker` / :class:`AmqpClient`: aiormq; ``call`` is RPC over the broker with RabbitMQ's
  direct reply-to (``amq.rabbitmq.reply-to``), ``send`` a one-way publish confirmed by the broker (the
  worker does the job later). ``reuse=False`` opens an AMQP connection per call.

Every client has ``await client.call(payload) -> payload`` and ``await client.stop()``; :class:`Protocols`
starts all three servers and the clients for a lab, and :func:`interleaved` times calls of several
clients in turn (so a noisy machine slows them all alike). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import aiormq
import grpc
from aiohttp import web
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from pamqp.commands import Basic

from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, non_negative, one_of, queue_name
from labkit.lifecycle import AmqpWorker, HttpApp, Part
from labkit.metrics import Record, Recording

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Blob",
    "GRPC_METHOD",
    "REPLY_TO",
    "HttpEchoServer",
    "HttpClient",
    "GrpcEchoServer",
    "GrpcClient",
    "AmqpEchoWorker",
    "AmqpClient",
    "Protocols",
    "payload",
    "interleaved",
]

GRPC_SERVICE = "labkit.Echo"
GRPC_METHOD = f"/{GRPC_SERVICE}/Echo"
REPLY_TO = "amq.rabbitmq.reply-to"
#: gRPC refuses messages over 4 MiB by default; the chapter goes to 1 MB, so allow some headroom.
_GRPC_OPTIONS = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)]


def _blob_class() -> type:
    """``labkit.Blob {bytes data = 1;}`` as a protobuf message class, from a descriptor (no protoc)."""
    proto = descriptor_pb2.FileDescriptorProto(name="labkit/echo.proto", package="labkit", syntax="proto3")
    message = proto.message_type.add(name="Blob")
    message.field.add(name="data", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("labkit.Blob"))


#: The gRPC request and response message.
Blob = _blob_class()


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` seeded random bytes: incompressible, like an image or an encrypted field."""
    integer("size", size, 0, 64 << 20)
    return random.Random(seed).randbytes(size)


def _bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


async def _work(seconds: float) -> None:
    if seconds:
        await asyncio.sleep(seconds)


# -- HTTP/1.1 + JSON ---------------------------------------------------------------------------------


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
        await _work(self.work_time)
        return web.json_response({"data": base64.b64encode(data).decode("ascii")})

    async def _bytes(self, request: web.Request) -> web.Response:
        data = await request.read()
        await _work(self.work_time)
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
        data = _bytes("data", data)
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


# -- gRPC: HTTP/2 + protobuf ---------------------------------------------------------------------------


class GrpcEchoServer(Part):
    """A grpc.aio server on 127.0.0.1 with the unary method :data:`GRPC_METHOD` (a generic handler)."""

    name = "gRPC echo server"

    def __init__(self, work_time: float = 0.0):
        self.work_time = non_negative("work_time", work_time)
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def _echo(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _work(self.work_time)
        return Blob(data=request.data)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> Self:
        self._check_stopped()
        self._server = grpc.aio.server(options=_GRPC_OPTIONS)
        handler = grpc.unary_unary_rpc_method_handler(
            self._echo, request_deserializer=Blob.FromString, response_serializer=Blob.SerializeToString)
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(GRPC_SERVICE, {"Echo": handler})])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None


class GrpcClient:
    """Calls a :class:`GrpcEchoServer` at ``target`` ("127.0.0.1:port"); ``reuse=False``: a channel per call."""

    def __init__(self, target: str, reuse: bool = True):
        if not isinstance(target, str) or ":" not in target:
            raise ValueError(f"target must be 'host:port', got {target!r}")
        self.target, self.reuse = target, bool(reuse)
        self._channel = self._open() if reuse else None

    def _open(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target, options=_GRPC_OPTIONS)

    @staticmethod
    async def _call(channel: grpc.aio.Channel, data: bytes) -> bytes:
        echo = channel.unary_unary(GRPC_METHOD, request_serializer=Blob.SerializeToString,
                                   response_deserializer=Blob.FromString)
        return (await echo(Blob(data=data))).data

    async def call(self, data: bytes) -> bytes:
        data = _bytes("data", data)
        if self._channel is not None:
            return await self._call(self._channel, data)
        channel = self._open()
        try:
            return await self._call(channel, data)
        finally:
            await channel.close()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


# -- AMQP: a broker hop ----------------------------------------------------------------------------------


class AmqpEchoWorker(AmqpWorker):
    """Consumes ``queue`` on its own connection; after ``work_time`` per message, answers requests that
    carry a ``reply_to`` (RPC) and just acknowledges the others (one-way). ``done`` counts messages.

    The queue is exclusive: it belongs to this worker and disappears with its connection (clients on
    other connections may still publish to it)."""

    def __init__(self, amqp_url: str, queue: str, work_time: float = 0.0, prefetch: int = 100):
        super().__init__(amqp_url, name=f"echo worker {queue}", prefetch=integer("prefetch", prefetch, 1, 65535),
                         confirms=False)
        self.queue = queue_name("queue", queue)
        self.work_time = non_negative("work_time", work_time)
        self.done = 0
        self._tasks: set[asyncio.Task] = set()

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        await channel.queue_declare(self.queue, exclusive=True)

    def subscriptions(self) -> list[tuple[str, None]]:
        return [(self.queue, None)]

    async def handle(self, message: aiormq.abc.DeliveredMessage) -> None:
        # Work on messages concurrently, as the HTTP and gRPC servers do with requests.
        task = asyncio.ensure_future(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: aiormq.abc.DeliveredMessage) -> None:
        await _work(self.work_time)
        props = message.header.properties
        if props.reply_to:
            await self.send(message.body, routing_key=props.reply_to,
                            properties=Basic.Properties(correlation_id=props.correlation_id))
        await message.channel.basic_ack(message.delivery.delivery_tag)
        self.done += 1

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()


class AmqpClient:
    """RPC (``call``: direct reply-to) and one-way confirmed publishes (``send``) to an
    :class:`AmqpEchoWorker`'s ``queue``. ``reuse=False``: a new AMQP connection for every call."""

    def __init__(self, amqp_url: str, queue: str, reuse: bool = True):
        self.amqp_url, self.queue, self.reuse = check_amqp_url("amqp_url", amqp_url), queue_name("queue", queue), bool(reuse)
        self._session: _AmqpSession | None = None

    async def start(self) -> AmqpClient:
        if self.reuse:
            self._session = await _AmqpSession.open(self.amqp_url)
        return self

    async def _with_session(self, use: Callable[[_AmqpSession], Awaitable[Any]]) -> Any:
        if self._session is not None:
            return await use(self._session)
        session = await _AmqpSession.open(self.amqp_url)
        try:
            return await use(session)
        finally:
            await session.stop()

    async def call(self, data: bytes) -> bytes:
        """Request/response over the broker: the worker's answer (the same bytes)."""
        data = _bytes("data", data)
        return await self._with_session(lambda s: s.rpc(self.queue, data))

    async def send(self, data: bytes) -> bytes:
        """One-way: returns (the payload) once the broker has confirmed the publish, not when it is done."""
        data = _bytes("data", data)
        await self._with_session(lambda s: s.channel.basic_publish(data, routing_key=self.queue))
        return data

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.stop()
            self._session = None


class _AmqpSession:
    """One connection with a confirming channel that also consumes direct replies."""

    def __init__(self, connection: aiormq.abc.AbstractConnection, channel: aiormq.abc.AbstractChannel):
        self.connection, self.channel = connection, channel
        self.pending: dict[str, asyncio.Future] = {}

    @classmethod
    async def open(cls, url: str) -> _AmqpSession:
        connection = await aiormq.connect(url)
        try:
            session = cls(connection, await connection.channel())
            await session.channel.basic_consume(REPLY_TO, session._on_reply, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        return session

    async def _on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        future = self.pending.pop(message.header.properties.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def rpc(self, queue: str, data: bytes) -> bytes:
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        try:
            await self.channel.basic_publish(data, routing_key=queue, properties=Basic.Properties(
                reply_to=REPLY_TO, correlation_id=correlation_id))
            return await future
        finally:
            self.pending.pop(correlation_id, None)

    async def stop(self) -> None:
        for future in self.pending.values():
            future.cancel()
        await self.connection.close()


# -- all three, for a lab --------------------------------------------------------------------------------


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
        try:
            for server in (self.http, self.grpc, self.worker):
                await server.start()
                self._started.append(server)
        except BaseException:
            await self.stop()
            raise
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
            self._clients[reuse] = {self.HTTP: HttpClient(self.http_url, "json", reuse),
                                    self.HTTP_BYTES: HttpClient(self.http_url, "bytes", reuse),
                                    self.GRPC: GrpcClient(self.grpc_target, reuse), self.AMQP_RPC: amqp}
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
    bar = tqdm(total=sum(counts.values()) * len(names), desc="calls", unit="call",
               disable=None if progress is None else not progress)
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
