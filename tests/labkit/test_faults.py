"""The fault proxy against real sockets: an aiohttp server and AMQP brokers (RabbitMQ and the embedded one).

Timing checks compare proxied with direct calls made in the same test, relative to the injected fault.
"""

import asyncio
import socket
import statistics
import time
import uuid
from urllib.parse import urlsplit

import aiohttp
import aiormq
import pytest
from aiohttp import web

from labkit.faults import DOWN, Bandwidth, Blackhole, FaultProxy, Latency, Reset
from labkit.load import open_loop
from labkit.metrics import Clock, percentile
from labkit.queues import declare_run_queue

BIG = 50_000  # bytes served by /big
BIG_BODY = bytes(range(256)) * (BIG // 256) + bytes(BIG % 256)  # a pattern: reordering would show
HUGE_BODY = bytes(range(251)) * 4000  # ~1 MB: many chunks per response


@pytest.fixture
async def upstream():
    """A real aiohttp server on 127.0.0.1; yields its port."""

    async def ok(request):
        return web.Response(text="ok")

    async def big(request):
        return web.Response(body=BIG_BODY)

    async def huge(request):
        return web.Response(body=HUGE_BODY)

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream):
    p = await FaultProxy("127.0.0.1", upstream, "svc", seed=1).start()
    yield p
    await p.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def timed_get(session, url, **kwargs):
    """(seconds, body) of one GET, or (seconds, exception) if it failed."""
    t = time.monotonic()
    try:
        async with session.get(url, **kwargs) as resp:
            body = await resp.read()
        return time.monotonic() - t, body
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return time.monotonic() - t, exc


async def paired_p50(session, proxy, upstream, n=12, path="/"):
    """Median latency of direct and proxied calls, interleaved so both see the same machine load."""
    direct, proxied = [], []
    for _ in range(n):
        direct.append((await timed_get(session, f"http://127.0.0.1:{upstream}{path}"))[0])
        proxied.append((await timed_get(session, proxy.url + path))[0])
    return percentile(direct, 50), percentile(proxied, 50)


async def test_passthrough(proxy, http):
    for _ in range(5):
        _, body = await timed_get(http, proxy.url + "/")
        assert body == b"ok"
    _, body = await timed_get(http, proxy.url + "/big")
    assert body == BIG_BODY
    assert proxy.accepted >= 1
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.bytes["downstream"] > BIG  # the big body came back through the proxy
    assert 6 * 30 < proxy.bytes["upstream"] < BIG  # six small GET requests went up


@pytest.mark.parametrize("direction", ["downstream", "upstream"])
async def test_latency_adds_the_injected_delay(proxy, http, upstream, direction):
    proxy.set(Latency(40, direction=direction))
    direct, proxied = await paired_p50(http, proxy, upstream)
    assert proxied - direct >= 0.8 * 0.040


async def test_latency_both_directions_adds_twice(proxy, http, upstream):
    proxy.set(Latency(30, direction="both"))
    direct, proxied = await paired_p50(http, proxy, upstream, n=8)
    assert proxied - direct >= 0.8 * 0.060


async def test_latency_jitter_spreads_delays(proxy, http):
    proxy.set(Latency(30, jitter_ms=20))
    samples = [(await timed_get(http, proxy.url + "/"))[0] for _ in range(30)]
    # uniform ±20 ms: p90 − p10 ≈ 32 ms; machine noise only widens the spread
    assert percentile(samples, 90) - percentile(samples, 10) >= 0.5 * 0.040
    assert min(samples) >= 0.010  # never below ms − jitter


async def test_latency_probability_is_per_connection(proxy):
    proxy.set(Latency(120, probability=0.5))
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per request
    async with aiohttp.ClientSession(connector=connector) as session:
        samples = [(await timed_get(session, proxy.url + "/"))[0] for _ in range(16)]
    slow = sum(s >= 0.1 for s in samples)
    assert 3 <= slow <= 13


async def test_toggling_toxics_keeps_the_byte_stream_intact(proxy, http):
    """Chunks forwarded directly (no toxic) and through the queue (toxic) must never overtake each other."""

    async def toggle():
        for k in range(10_000):
            proxy.set(Latency(1, jitter_ms=1, direction="both")) if k % 2 else proxy.clear()
            await asyncio.sleep(0.001)

    toggler = asyncio.ensure_future(toggle())
    try:
        for _ in range(8):
            _, body = await timed_get(http, proxy.url + "/huge")
            assert body == HUGE_BODY
    finally:
        toggler.cancel()
        await asyncio.gather(toggler, return_exceptions=True)


async def test_down_refuses_and_resets_then_recovers(proxy, http):
    assert (await timed_get(http, proxy.url + "/"))[1] == b"ok"  # a pooled keep-alive connection now exists
    proxy.down()
    assert proxy.is_down and proxy.toxics == []  # a state of the proxy, not a toxic
    _, result = await timed_get(http, proxy.url + "/")
    assert isinstance(result, aiohttp.ClientError)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    assert "refusing" in repr(proxy)
    proxy.clear()
    assert (await timed_get(http, proxy.url + "/"))[1] == b"ok"  # same port, listening again


async def test_down_keeps_its_port_from_other_listeners(proxy, http):
    """While down the port stays reserved: another server (aiohttp binds with SO_REUSEADDR) cannot take it,
    so callers are refused instead of reaching a stranger; afterwards the proxy listens on it again."""
    proxy.down()
    thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        with pytest.raises(OSError):
            thief.bind(("127.0.0.1", proxy.port))
            thief.listen(1)
    finally:
        thief.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.up()
    assert (await timed_get(http, proxy.url + "/"))[1] == b"ok"


async def test_blackhole_accepts_but_never_answers(proxy, http):
    proxy.set(Blackhole())
    before = proxy.accepted
    elapsed, result = await timed_get(http, proxy.url + "/", timeout=aiohttp.ClientTimeout(total=0.3))
    assert isinstance(result, asyncio.TimeoutError)
    assert elapsed >= 0.3
    assert proxy.accepted == before + 1  # the connection was accepted, not refused
    proxy.clear()
    assert (await timed_get(http, proxy.url + "/"))[1] == b"ok"


async def test_blackhole_holds_data_until_cleared(proxy):
    proxy.set(Blackhole(direction="downstream"))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    proxy.clear()
    reply = await asyncio.wait_for(reader.read(), 5)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok")
    writer.close()


async def test_reset_sends_rst(proxy):
    proxy.set(Reset())
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 5)
    writer.close()


async def test_reset_probability_per_connection(proxy):
    proxy.set(Reset(0.5))
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        results = [(await timed_get(session, proxy.url + "/"))[1] for _ in range(16)]
    failed = sum(isinstance(r, Exception) for r in results)
    assert 3 <= failed <= 13


async def test_bandwidth_limits_throughput(proxy, http, upstream):
    kbps = 4000  # 50 kB at 4 Mbit/s ≈ 0.1 s
    proxy.set(Bandwidth(kbps))
    direct, proxied = await paired_p50(http, proxy, upstream, n=3, path="/big")
    assert proxied - direct >= 0.8 * BIG * 8 / (kbps * 1000)
    _, body = await timed_get(http, proxy.url + "/big")
    assert body == BIG_BODY


async def test_schedule_on_the_experiment_timeline(proxy):
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=2)) as session:

        async def op(i):
            async with session.get(proxy.url + "/") as resp:
                await resp.read()

        await op(-1)  # warm up the client's code paths before the timeline starts
        clock = Clock()
        task = proxy.schedule([(0.5, 1.0, DOWN)], clock)
        rec = await open_loop(op, rate=40, duration=1.6, arrivals="constant", t0=clock, progress=False)
        await task
    # by actual start time, with 0.2 s margins either side of the outage, to survive a loaded machine
    before, during, after = (rec.window(a, b, by="start") for a, b in ((0, 0.3), (0.6, 0.9), (1.2, 1.6)))
    timeline = [(round(r.start - clock.t0, 3), r.ok) for r in rec], proxy.bands(clock)  # shown on failure
    assert before.success_rate() == 1.0, (before.errors(), timeline)
    assert during.success_rate() == 0.0, timeline
    assert after.success_rate() == 1.0, (after.errors(), timeline)
    [band] = proxy.bands(clock)
    assert band["kind"] == "down" and band["label"] == "svc: down"
    assert 0.5 <= band["start"] < band["end"] and band["end"] >= 1.0
    assert proxy.toxics == []


async def test_set_add_remove_and_bands(proxy):
    lat, hole = Latency(10), Blackhole()
    proxy.set(lat)
    proxy.add(hole)
    assert proxy.toxics == [lat, hole]
    proxy.set(hole)  # replaces: lat off, hole stays on
    assert proxy.toxics == [hole]
    proxy.remove(hole)
    bands = proxy.bands()
    assert [b["kind"] for b in bands] == ["Latency", "Blackhole"]
    assert all(b["end"] is not None and b["end"] >= b["start"] >= 0 for b in bands)


async def test_clear_cancels_pending_schedule(proxy):
    task = proxy.schedule([(0, 10, DOWN), (0.05, 10, Latency(5))])
    await asyncio.sleep(0.01)
    assert proxy.is_down
    proxy.clear()
    await asyncio.sleep(0.1)
    assert task.cancelled() and proxy.toxics == [] and not proxy.is_down


async def test_stop_leaves_nothing_running(upstream, http):
    p = await FaultProxy("127.0.0.1", upstream).start()
    p.schedule([(0, 30, Blackhole())])
    hung = asyncio.ensure_future(timed_get(http, p.url + "/"))
    await asyncio.sleep(0.1)
    await p.stop()
    _, result = await hung
    assert isinstance(result, aiohttp.ClientError)  # the held connection was reset, not left hanging
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", p.port)
    await http.close()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_upstream_refusing_resets_client():
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    async with FaultProxy("127.0.0.1", dead_port) as p:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 5)
        writer.close()


def test_validation():
    cases = [
        (lambda: Latency(-1), "ms must be >= 0, got -1"),
        (lambda: Latency(10, jitter_ms=-2), "jitter_ms must be >= 0"),
        (lambda: Latency(10, direction="sideways"), "direction must be one of 'upstream', 'downstream', 'both'"),
        (lambda: Reset(1.5), r"probability must be in \[0, 1\], got 1.5"),
        (lambda: Blackhole(probability=-0.1), r"probability must be in \[0, 1\]"),
        (lambda: Bandwidth(0), "kbps must be > 0, got 0"),
        (lambda: FaultProxy("127.0.0.1", 0), r"upstream_port must be an integer in \[1, 65535\], got 0"),
        (lambda: FaultProxy("127.0.0.1", 80, port=70000), r"port must be an integer in \[0, 65535\], got 70000"),
        (lambda: FaultProxy("", 80), "upstream_host must be"),
        (lambda: FaultProxy("127.0.0.1", 80).set("latency"), "toxic must be one of Latency, Blackhole"),
        (lambda: FaultProxy("127.0.0.1", 80).via("nonsense"), "url must be an absolute URL"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()


async def test_schedule_validation(proxy):
    with pytest.raises(ValueError, match=r"plan\[0\].t_end - t_start must be > 0"):
        proxy.schedule([(2, 1, DOWN)])
    with pytest.raises(ValueError, match=r"plan\[0\].t_start must be >= 0"):
        proxy.schedule([(-1, 1, DOWN)])
    with pytest.raises(ValueError, match=r"plan\[1\] must be a \(t_start, t_end, toxic\) tuple"):
        proxy.schedule([(0, 1, DOWN), (1, 2)])
    with pytest.raises(ValueError, match=r"plan\[0\].toxic must be one of .* or DOWN, got 'sideways'"):
        proxy.schedule([(0, 1, "sideways")])


# --- AMQP through the proxy ----------------------------------------------------------------------------------


async def confirm_rtt(channel, queue, n):
    """Median publish → confirm round trip over n publishes."""
    samples = []
    for _ in range(n):
        t = time.monotonic()
        await channel.basic_publish(b"ping", routing_key=queue)
        samples.append(time.monotonic() - t)
    return statistics.median(samples)


async def test_amqp_through_the_proxy(amqp_url):
    host, port = urlsplit(amqp_url).hostname, urlsplit(amqp_url).port
    queue = f"labkit-faults-{uuid.uuid4().hex[:8]}"
    async with FaultProxy(host, port, "broker") as proxy:
        assert proxy.via(amqp_url) == amqp_url.replace(f":{port}/", f":{proxy.port}/")
        direct_conn = await aiormq.connect(amqp_url)
        conn = await aiormq.connect(proxy.via(amqp_url))
        try:
            direct_ch = await direct_conn.channel()
            ch = await conn.channel()
            await declare_run_queue(ch, queue)
            await ch.basic_publish(b"hello", routing_key=queue)
            got = await ch.basic_get(queue, no_ack=True)
            assert got.body == b"hello"

            proxy.set(Latency(30))
            direct = await confirm_rtt(direct_ch, queue, 6)
            proxied = await confirm_rtt(ch, queue, 6)
            assert proxied - direct >= 0.8 * 0.030

            proxy.down()
            await asyncio.wait([conn.closing], timeout=5)  # the broker link was cut...
            assert conn.is_closed
            assert isinstance(conn.closing.exception(), aiormq.exceptions.AMQPConnectionError)  # ...by a reset
            with pytest.raises((ConnectionError, aiormq.exceptions.AMQPConnectionError)):
                await aiormq.connect(proxy.via(amqp_url))
            proxy.clear()
            again = await aiormq.connect(proxy.via(amqp_url))
            await again.close()
        finally:
            await direct_ch.queue_delete(queue)
            await direct_conn.close()
            await conn.close()


async def test_the_proxy_state_follows_its_table_and_a_toxic_has_toxiproxys_fields():
    from labkit.faults import PROXY_TRANSITIONS, ProxyState

    assert PROXY_TRANSITIONS[ProxyState.STOPPED] == {ProxyState.LISTENING}
    proxy = FaultProxy("127.0.0.1", 9, "state")
    assert proxy.state is ProxyState.STOPPED and not proxy.running
    await proxy.start()
    proxy.down()
    proxy.down()  # already down: nothing to do
    assert proxy.state == "refusing"
    proxy.up()
    assert proxy.state is ProxyState.LISTENING
    proxy.down()
    await proxy.stop()  # stopping a proxy that is down ends its outage band and reopens nothing
    assert proxy.state is ProxyState.STOPPED and all(b["end"] is not None for b in proxy.bands())
    proxy.up()
    assert proxy.state is ProxyState.STOPPED
    with pytest.raises(RuntimeError, match="is stopped: start it before taking it down"):
        proxy.down()
    latency = Latency(5, direction="upstream", probability=0.5)
    assert (latency.name, latency.type, latency.direction, latency.toxicity) == (
        "latency_upstream",
        "latency",
        "upstream",
        0.5,
    )
    assert Reset(name="flaky").name == "flaky"
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        Latency(1, name="")
