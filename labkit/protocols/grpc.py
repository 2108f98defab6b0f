"""Protobuf over HTTP/2: a grpc.aio echo server with a generic handler, and its client (no code generation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from labkit._validate import non_negative
from labkit.lifecycle import Part
from labkit.protocols._common import check_bytes, work

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["GRPC_METHOD", "Blob", "GrpcClient", "GrpcEchoServer"]

GRPC_SERVICE = "labkit.Echo"
GRPC_METHOD = f"/{GRPC_SERVICE}/Echo"
#: gRPC refuses messages over 4 MiB by default; the chapter goes to 1 MB, so allow some headroom.
_GRPC_OPTIONS = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)]


def _blob_class() -> type[Message]:
    """``labkit.Blob {bytes data = 1;}`` as a protobuf message class, from a descriptor (no protoc)."""
    proto = descriptor_pb2.FileDescriptorProto(name="labkit/echo.proto", package="labkit", syntax="proto3")
    message = proto.message_type.add(name="Blob")
    message.field.add(
        name="data",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("labkit.Blob"))


#: The gRPC request and response message.
Blob = _blob_class()


#: The gRPC request and response message.
Blob = _blob_class()


class GrpcEchoServer(Part):
    """A grpc.aio server on 127.0.0.1 with the unary method :data:`GRPC_METHOD` (a generic handler)."""

    name = "gRPC echo server"

    def __init__(self, work_time: float = 0.0):
        self.work_time = non_negative("work_time", work_time)
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def _echo(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await work(self.work_time)
        return Blob(data=request.data)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> Self:
        self._check_stopped()
        self._server = grpc.aio.server(options=_GRPC_OPTIONS)
        handler = grpc.unary_unary_rpc_method_handler(
            self._echo, request_deserializer=Blob.FromString, response_serializer=Blob.SerializeToString
        )
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
        echo = channel.unary_unary(
            GRPC_METHOD, request_serializer=Blob.SerializeToString, response_deserializer=Blob.FromString
        )
        return (await echo(Blob(data=data))).data

    async def call(self, data: bytes) -> bytes:
        data = check_bytes("data", data)
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
