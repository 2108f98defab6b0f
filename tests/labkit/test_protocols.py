"""labkit.protocols over real sockets: HTTP/1.1 (JSON and raw bytes), gRPC, and AMQP on both brokers.

Timing is compared only inside one run (never against an absolute time).
"""

import asyncio
import json
import socket

import aiohttp
import pytest

from labkit.protocols import (
    AmqpClient,
    AmqpEchoWorker,
    Blob,
    GrpcClient,
    GrpcEchoServer,
    HttpClient,
    HttpEchoServer,
    Protocols,
    interleaved,
    payload,
)

SIZES = [0, 100, 70_000, 300_000]  # empty, small, over one 64 KiB chunk / HTTP/2 window, over one AMQP frame


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_blob_is_a_real_protobuf_message():
    data = payload(1000, seed=3)
    wire = Blob(data=data).SerializeToString()
    assert Blob.FromString(wire).data == data
    assert len(wire) == len(data) + 3  # tag (1 byte) + varint length (2 bytes) + the bytes: no encoding
    assert payload(1000, seed=3) == data != payload(1000, seed=4)


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("encoding", ["json", "bytes"])
async def test_http_echoes_every_size(reuse, encoding):
    server = await HttpEchoServer().start()
    client, port = HttpClient(server.url, encoding, reuse=reuse), server.port
    try:
        for size in SIZES:
            data = payload(size)
            assert await client.call(data) == data
    finally:
        await client.stop()
        await server.stop()
    assert refuses(port)


async def test_http_json_body_carries_base64():
    server = await HttpEchoServer().start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + "json", json={"data": "aGVsbG8="}) as resp:
                assert json.loads(await resp.read()) == {"data": "aGVsbG8="}  # b"hello" in base64
    finally:
        await server.stop()


@pytest.mark.parametrize("reuse", [True, False])
async def test_grpc_echoes_every_size(reuse):
    server = await GrpcEchoServer().start()
    client = GrpcClient(server.target, reuse=reuse)
    try:
        for size in [*SIZES, 5_000_000]:  # over gRPC's default 4 MiB limit
            data = payload(size)
            assert await client.call(data) == data
    finally:
        await client.stop()
        await server.stop()
    assert refuses(server.port)


@pytest.mark.parametrize("reuse", [True, False])
async def test_amqp_rpc_and_one_way(amqp_url, unique, reuse):
    queue = unique("echo")
    worker = await AmqpEchoWorker(amqp_url, queue).start()
    client = await AmqpClient(amqp_url, queue, reuse=reuse).start()
    try:
        for size in SIZES:
            data = payload(size)
            assert await client.call(data) == data
        await asyncio.gather(*(client.send(b"fire and forget") for _ in range(5)))
        for _ in range(250):  # the worker handles one-way messages after the publisher has moved on
            if worker.done == len(SIZES) + 5:
                break
            await asyncio.sleep(0.02)
        assert worker.done == len(SIZES) + 5
    finally:
        await client.stop()
        await worker.stop()


async def test_concurrent_rpcs_get_their_own_answers(amqp_url, unique):
    queue = unique("echo")
    worker = await AmqpEchoWorker(amqp_url, queue, work_time=0.01).start()
    client = await AmqpClient(amqp_url, queue).start()
    try:
        bodies = [f"call {i}".encode() for i in range(20)]
        assert await asyncio.gather(*(client.call(b) for b in bodies)) == bodies
    finally:
        await client.stop()
        await worker.stop()


async def test_work_time_is_paid_by_every_protocol(amqp_url):
    """The same job: with 50 ms of work each protocol's median rises by about 50 ms (same run, wide margins)."""
    fast = await Protocols(amqp_url).start()
    slow = await Protocols(amqp_url, work_time=0.05).start()
    try:
        calls = {f"{name} fast": c for name, c in (await fast.calls()).items()}
        calls |= {f"{name} slow": c for name, c in (await slow.calls()).items()}
        rec = await interleaved(calls, [100], 7, progress=False)
        assert rec.success_rate() == 1.0, rec.errors()
        by = rec.group_by("protocol")
        for name in (Protocols.HTTP, Protocols.HTTP_BYTES, Protocols.GRPC, Protocols.AMQP_RPC):
            extra = by[f"{name} slow"].percentile(50) - by[f"{name} fast"].percentile(50)
            assert 0.025 < extra < 0.5, (name, extra)
    finally:
        await slow.stop()
        await fast.stop()


async def test_protocols_start_their_servers_and_stop_everything(amqp_url):
    protocols = await Protocols(amqp_url).start()
    calls = await protocols.calls(reuse=True, one_way=True)
    assert set(calls) == {
        Protocols.HTTP,
        Protocols.HTTP_BYTES,
        Protocols.GRPC,
        Protocols.AMQP_RPC,
        Protocols.AMQP_PUBLISH,
    }
    fresh = await protocols.calls(reuse=False)
    assert Protocols.AMQP_PUBLISH not in fresh
    for call in [*calls.values(), *fresh.values()]:
        assert await call(b"ping") == b"ping"
    ports = [protocols.http.port, protocols.grpc.port]
    before = {t for t in asyncio.all_tasks() if not t.done()}
    await protocols.stop()
    assert all(refuses(p) for p in ports)
    for _ in range(100):  # closing connections finishes in tasks of their own: give them time on a busy machine
        left = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left, left


async def test_interleaved_takes_turns_warms_up_and_records_failures():
    order = []

    def make(name, fail=False):
        async def call(data):
            order.append(name)
            if fail:
                raise RuntimeError("boom")
            return data if name != "liar" else b"?"

        return call

    calls = {"a": make("a"), "b": make("b"), "c": make("c", fail=False), "liar": make("liar")}
    rec = await interleaved(calls, [10, 20], {10: 3, 20: 1}, warmup=1, progress=False)
    assert order[:4] == ["a", "b", "c", "liar"]  # the warm-up round, not recorded
    assert order[4:8] == ["a", "b", "c", "liar"] and order[8:12] == ["b", "c", "liar", "a"]  # rotating turns
    assert len(rec) == (3 + 1) * 4
    assert {(r.info["protocol"], r.info["size"]) for r in rec} >= {("a", 10), ("liar", 20)}
    assert rec.errors() == {"echo differs (1 bytes back for 10)": 3, "echo differs (1 bytes back for 20)": 1}
    failing = await interleaved({"x": make("x", fail=True)}, [1], 2, warmup=0, progress=False)
    assert failing.success_rate() == 0 and failing.errors() == {"RuntimeError: boom": 2}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: payload(-1), "size must be an integer in"),
        (lambda: HttpEchoServer(work_time=-1), "work_time must be >= 0"),
        (lambda: HttpClient("ftp://x", "json"), "url must be an http:// URL"),
        (lambda: HttpClient("http://127.0.0.1:1/", "xml"), "encoding must be one of"),
        (lambda: GrpcClient("nohost"), "target must be 'host:port'"),
        (lambda: AmqpClient("http://x", "q"), "amqp_url must start with amqp://"),
        (lambda: AmqpEchoWorker("amqp://x", ""), "queue must be a non-empty queue name"),
        (lambda: AmqpEchoWorker("amqp://x", "q", prefetch=0), "prefetch must be an integer in"),
        (lambda: Protocols("amqp://x", work_time=float("nan")), "work_time must be a finite number"),
    ],
)
def test_arguments_are_validated(call, message):
    with pytest.raises(ValueError, match=message):
        call()


async def test_interleaved_validates_its_arguments():
    async def echo(data):
        return data

    with pytest.raises(ValueError, match="calls must map at least one"):
        await interleaved({}, [1], 1)
    with pytest.raises(ValueError, match="sizes must list at least one"):
        await interleaved({"a": echo}, [], 1)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        await interleaved({"a": echo}, [1, 2], {1: 3})
    with pytest.raises(ValueError, match="warmup must be an integer >= 0"):
        await interleaved({"a": echo}, [1], 1, warmup=-1)


async def test_clients_refuse_non_bytes():
    server = await HttpEchoServer().start()
    client = HttpClient(server.url)
    try:
        with pytest.raises(ValueError, match="data must be bytes, got str"):
            await client.call("text")
    finally:
        await client.stop()
        await server.stop()
