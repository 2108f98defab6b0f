"""How faithful is the lab itself? Measures the harness against the targets of DESIGN.md §5.

Not a test: timings depend on the machine, so this prints measured figures next to their targets.

1. Fidelity: an aiohttp service behind the fault proxy with ``Latency(50)``, driven open loop (Poisson)
   at 200 req/s: the measured p50 should be within ±2 ms of 50 ms. The same for a lab service with a
   fixed 50 ms ``service_time`` called through ``lab.call`` (what the chapters do).
2. Overhead per hop: the same request direct vs through the proxy with no toxic, interleaved so both
   see the same load: p50(proxied) − p50(direct) ≤ 1 ms. A raw-socket round trip is shown as the floor.
3. Send-time error of the open-loop generator (actual start − scheduled): p99 ≤ 2 ms, measured in run 1
   and in an idle run (operations that return at once) at 200 and 1000 req/s.

Run: ``python bench/harness.py [--duration 5] [--rate 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import aiohttp
from aiohttp import web

from labkit.faults import FaultProxy, Latency
from labkit.lifecycle import HttpApp
from labkit.load import open_loop
from labkit.metrics import percentile


class Ok(HttpApp):
    """A real aiohttp service on 127.0.0.1 that answers at once (the proxy adds any latency)."""

    def __init__(self) -> None:
        super().__init__(name="bench service")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.ok)

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


async def start_echo() -> tuple[asyncio.AbstractServer, int]:
    """A raw TCP echo server: the floor a loopback round trip costs in this event loop."""

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def getter(session: aiohttp.ClientSession, url: str):
    async def op(i):
        async with session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")

    return op


async def timed(op) -> float:
    t = time.monotonic()
    await op(0)
    return time.monotonic() - t


async def fidelity(session, proxy, rate, duration):
    """Open loop through the proxy without a toxic (the baseline), then with Latency(50)."""
    op = getter(session, proxy.url + "/")
    baseline = await open_loop(op, rate=rate, duration=duration / 2, seed=1, progress=False)
    proxy.set(Latency(50))
    rec = await open_loop(op, rate=rate, duration=duration, seed=1, progress=False)
    proxy.clear()
    return baseline, rec


async def service_fidelity(rate, duration):
    """Open loop against a ``labkit.lab`` service with a fixed 50 ms service time (no broker needed)."""
    from labkit.lab import Lab  # the lab kit's own services, as the chapters start them

    async with Lab(seed=0, amqp=False) as lab:
        svc = await lab.service("bench", service_time=0.050, distribution="fixed")
        return await open_loop(lambda i: lab.call(svc), rate=rate, duration=duration, seed=3, progress=False)


async def hop_overhead(session, proxy, port, echo_port, n):
    direct, proxied, raw = [], [], []
    direct_op = getter(session, f"http://127.0.0.1:{port}/")
    proxied_op = getter(session, proxy.url + "/")
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
    for _ in range(20):  # warm up connections and code paths
        await direct_op(0)
        await proxied_op(0)
    for _ in range(n):
        direct.append(await timed(direct_op))
        proxied.append(await timed(proxied_op))
        t = time.monotonic()
        writer.write(b"x" * 64)
        await reader.readexactly(64)
        raw.append(time.monotonic() - t)
    writer.close()
    return direct, proxied, raw


async def idle_send_error(rate, duration):
    async def nothing(i):
        return None

    rec = await open_loop(nothing, rate=rate, duration=duration, seed=2, progress=False)
    return rec.send_error_percentile(50), rec.send_error_percentile(99)


def row(name, value_ms, target, ok):
    verdict = "ok" if ok else "MISS"
    print(f"  {name:<46} {value_ms:>9.3f} ms   target {target:<14} {verdict}")


async def main(args) -> None:
    service = await Ok().start()
    port = service.port
    echo, echo_port = await start_echo()
    proxy = await FaultProxy("127.0.0.1", port, "bench").start()
    print("load average (1, 5, 15 min): %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count()))
    try:
        async with aiohttp.ClientSession() as session:
            print(f"1. fidelity: Latency(50 ms) behind the proxy, Poisson {args.rate} req/s for {args.duration} s")
            baseline, rec = await fidelity(session, proxy, args.rate, args.duration)
            p50 = rec.percentile(50) * 1e3
            print(
                f"  n={len(rec)} success={rec.success_rate():.3f} p90={rec.percentile(90) * 1e3:.2f} ms "
                f"p99={rec.percentile(99) * 1e3:.2f} ms"
            )
            row("p50 without the toxic (baseline)", baseline.percentile(50) * 1e3, "", True)
            row("p50", p50, "50 ± 2 ms", abs(p50 - 50) <= 2)
            row("send-time error p50", rec.send_error_percentile(50) * 1e3, "", True)
            row(
                "send-time error p99",
                rec.send_error_percentile(99) * 1e3,
                "≤ 2 ms",
                rec.send_error_percentile(99) * 1e3 <= 2,
            )

            svc = await service_fidelity(args.rate, args.duration)
            row(
                "lab service, service_time=50 ms: p50",
                svc.percentile(50) * 1e3,
                "50 ± 2 ms",
                abs(svc.percentile(50) * 1e3 - 50) <= 2,
            )

            print(f"2. overhead per HTTP hop: {args.samples} sequential calls each, interleaved")
            direct, proxied, raw = await hop_overhead(session, proxy, port, echo_port, args.samples)
            d50, p50h, r50 = (percentile(x, 50) * 1e3 for x in (direct, proxied, raw))
            row("raw TCP round trip p50 (floor)", r50, "", True)
            row("direct aiohttp call p50", d50, "", True)
            row("through the fault proxy p50", p50h, "", True)
            row("proxy hop overhead (p50 difference)", p50h - d50, "≤ 1 ms", p50h - d50 <= 1)
            diffs = [p - d for p, d in zip(proxied, direct)]
            row(
                "proxy hop overhead (median paired difference)",
                statistics.median(diffs) * 1e3,
                "≤ 1 ms",
                statistics.median(diffs) * 1e3 <= 1,
            )

        print(f"3. open-loop send-time error with operations that return at once ({args.duration} s)")
        for rate in (200, 1000):
            e50, e99 = await idle_send_error(rate, args.duration)
            row(f"{rate} req/s: p50", e50 * 1e3, "", True)
            row(f"{rate} req/s: p99", e99 * 1e3, "≤ 2 ms", e99 * 1e3 <= 2)
    finally:
        await proxy.stop()
        echo.close()
        await echo.wait_closed()
        await service.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per open-loop run (default 5)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop rate for run 1 (default 200)")
    parser.add_argument("--samples", type=int, default=500, help="calls per side for the hop overhead")
    asyncio.run(main(parser.parse_args()))
