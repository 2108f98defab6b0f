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

from labkit.protocols._common import payload
from labkit.protocols.amqp import REPLY_TO, AmqpClient, AmqpEchoWorker
from labkit.protocols.grpc import GRPC_METHOD, Blob, GrpcClient, GrpcEchoServer
from labkit.protocols.harness import Protocols, interleaved
from labkit.protocols.http import HttpClient, HttpEchoServer

__all__ = [
    "GRPC_METHOD",
    "REPLY_TO",
    "AmqpClient",
    "AmqpEchoWorker",
    "Blob",
    "GrpcClient",
    "GrpcEchoServer",
    "HttpClient",
    "HttpEchoServer",
    "Protocols",
    "interleaved",
    "payload",
]
