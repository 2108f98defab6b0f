"""Embedded broker vs RabbitMQ on the same aiormq workload, and own process vs the kernel's event loop.

Not a test: throughput and latency depend on the machine and on whatever else runs on it, so this
prints measured figures, the embedded/RabbitMQ ratio and the targets of DESIGN.md §5 with PASS/MISS.

Workloads (aiormq client, 100-byte messages, loopback):
- publish without confirms, with each confirm awaited, with confirms awaited per batch of 100 (msg/s);
- consume with a manual ack per message at prefetch 1, 10 and 100 from a pre-filled queue (msg/s);
- round trip: publish -> consumer on another connection, one message at a time (p50/p99 ms);
- broker RSS idle, and its growth with 100,000 queued messages (psutil on the broker's pid; for
  RabbitMQ the beam.smp process, n/a if not visible);
- durability: persistent messages (delivery_mode 2) to a durable queue with each confirm awaited and
  per batch of 100, where the embedded broker writes and fsyncs its log (``--data-dir``) before each
  confirm batch; and restart-to-ready: how long the embedded broker takes from SIGKILL to serving a
  queue of 100,000 recovered persistent messages (RabbitMQ, shared, cannot be restarted from here).
  Every other row runs the embedded broker with persistence off (no data directory).

Fairness on a shared machine: each workload is cut into rounds and the brokers take turns round by
round, so every column sees the same background load; a rate is total messages / total time.

The embedded broker runs as the lab runs it, a BrokerProcess. The "in-loop" column runs the same
Broker inside this script's event loop, next to the aiormq clients (the design the lab rejected), and
the last lines show why: how long another client waits for an answer while the loop that owns the
broker is blocked for a second, as a notebook cell running time.sleep blocks the kernel.

Run: ``python bench/broker.py [--quick] [--output FILE]``; with ``AMQP_URL`` set it includes RabbitMQ.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiormq
import psutil
from pamqp import body as pbody
from pamqp import commands, frame, header

from labkit.broker import Broker
from labkit.broker.process import BrokerProcess
from labkit.lifecycle import wait_until
from labkit.metrics import percentile

BODY = b"x" * 100
PERSISTENT = commands.Basic.Properties(delivery_mode=2)
QUEUE_ARGS = {"x-expires": 600_000}  # durable + x-expires: declarable on RabbitMQ 4.3 and 3.10 alike
MB = 1024 * 1024
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


@dataclass
class Sizes:
    messages: int  # per throughput workload and broker
    round_trips: int
    fill: int  # queued messages for the RSS measurement
    rounds: int = 10
    block_s: float = 1.0


FULL = Sizes(messages=20_000, round_trips=2_000, fill=100_000)
QUICK = Sizes(messages=2_000, round_trips=300, fill=20_000, rounds=4)


@dataclass
class Target:
    """One broker under test: its URL, the pid whose RSS we read (if visible) and what it measured."""

    name: str
    url: str
    pid: int | None
    results: dict[str, float | None] = field(default_factory=dict)
    cpu_broker: float = 0.0  # CPU seconds over the throughput workloads: the broker's process ...
    cpu_client: float = 0.0  # ... and this one (the aiormq clients)


# --- helpers ------------------------------------------------------------------------------------------


async def wait_depth(channel, queue: str, depth: int) -> None:
    """Until ``queue`` holds ``depth`` ready messages (RabbitMQ's queue process may lag its channel)."""

    async def deep_enough() -> bool:
        return (await channel.queue_declare(queue, passive=True)).message_count >= depth

    await wait_until(deep_enough, timeout=60, interval=0.002, what=f"{depth} ready messages in {queue}")


async def with_queue(url: str, body: Callable[[aiormq.Connection, str], Awaitable]):
    """Run ``body(connection, queue)`` on a fresh queue that is deleted afterwards."""
    connection = await aiormq.connect(url)
    try:
        setup = await connection.channel()
        # durable (RabbitMQ 4.3 refuses transient shared queues), x-expires in case the delete is missed
        queue = (await setup.queue_declare(f"bench-{uuid.uuid4().hex[:8]}", durable=True, arguments=QUEUE_ARGS)).queue
        try:
            return await body(connection, queue)
        finally:
            await setup.queue_delete(queue)
    finally:
        await connection.close()


async def blast(url: str, queue: str, n: int, persistent: bool = False) -> None:
    """Queue ``n`` messages fast: pre-built publish frames written straight to a socket.

    Only for filling queues (consume workloads, RSS): the aiormq client would be the bottleneck and
    make a fill of 100,000 messages take most of the run. Measured workloads all use aiormq.
    """
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)

    async def expect(kind):
        head = await reader.readexactly(7)
        _, _, value = frame.unmarshal(head + await reader.readexactly(struct.unpack(">I", head[3:])[0] + 1))
        if not isinstance(value, kind):
            raise RuntimeError(f"expected {kind.__name__}, got {value!r}")
        return value

    try:
        writer.write(PROTOCOL_HEADER)
        await expect(commands.Connection.Start)
        writer.write(
            frame.marshal(commands.Connection.StartOk(response=f"\0{address.username}\0{address.password}"), 0)
        )
        tune = await expect(commands.Connection.Tune)
        writer.write(frame.marshal(commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0), 0))
        writer.write(frame.marshal(commands.Connection.Open(), 0))
        await expect(commands.Connection.OpenOk)
        writer.write(frame.marshal(commands.Channel.Open(), 1))
        await expect(commands.Channel.OpenOk)
        one = b"".join(
            (
                frame.marshal(commands.Basic.Publish(routing_key=queue), 1),
                frame.marshal(
                    header.ContentHeader(body_size=len(BODY), properties=PERSISTENT if persistent else None), 1
                ),
                frame.marshal(pbody.ContentBody(BODY), 1),
            )
        )
        for start in range(0, n, 1000):
            writer.write(one * min(1000, n - start))
            await writer.drain()
        writer.write(frame.marshal(commands.Connection.Close(200, "filled", 0, 0), 0))
        await expect(commands.Connection.CloseOk)
    finally:
        writer.close()


async def fill(connection: aiormq.Connection, queue: str, n: int) -> None:
    await blast(str(connection.url), queue, n)
    channel = await connection.channel(publisher_confirms=False)
    await wait_depth(channel, queue, n)
    await channel.close()


# --- workloads: elapsed seconds for n messages, or round-trip samples in ms -----------------------------


def publish_no_confirms(n: int):
    async def body(connection, queue):
        channel = await connection.channel(publisher_confirms=False)
        t0 = time.perf_counter()
        for _ in range(n):
            await channel.basic_publish(BODY, routing_key=queue)
        await wait_depth(channel, queue, n)  # done when the broker holds them all
        return time.perf_counter() - t0

    return body


def publish_confirm_each(n: int, properties: commands.Basic.Properties | None = None):
    async def body(connection, queue):
        channel = await connection.channel()
        t0 = time.perf_counter()
        for _ in range(n):
            await channel.basic_publish(BODY, routing_key=queue, properties=properties)
        return time.perf_counter() - t0

    return body


def publish_confirm_batches(n: int, batch: int = 100, properties: commands.Basic.Properties | None = None):
    async def body(connection, queue):
        channel = await connection.channel()
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            await asyncio.gather(
                *(
                    channel.basic_publish(BODY, routing_key=queue, properties=properties)
                    for _ in range(min(batch, n - start))
                )
            )
        return time.perf_counter() - t0

    return body


def consume(n: int, prefetch: int):
    async def body(connection, queue):
        await fill(connection, queue, n)
        consumer = await aiormq.connect(connection.url)
        try:
            channel = await consumer.channel(publisher_confirms=False)
            await channel.basic_qos(prefetch_count=prefetch)
            done = asyncio.Event()
            count = 0

            async def on_message(message):
                nonlocal count
                await channel.basic_ack(message.delivery_tag)
                count += 1
                if count == n:
                    done.set()

            t0 = time.perf_counter()
            await channel.basic_consume(queue, on_message)
            await done.wait()
            return time.perf_counter() - t0
        finally:
            await consumer.close()

    return body


def round_trips(n: int):
    async def body(connection, queue):
        consumer = await aiormq.connect(connection.url)
        try:
            inbox = await consumer.channel(publisher_confirms=False)
            arrived: asyncio.Future | None = None

            def on_message(message):
                if arrived is not None and not arrived.done():
                    arrived.set_result(time.perf_counter())

            await inbox.basic_consume(queue, on_message, no_ack=True)
            outbox = await connection.channel(publisher_confirms=False)
            loop = asyncio.get_running_loop()
            samples = []
            for _ in range(n):
                arrived = loop.create_future()
                t0 = time.perf_counter()
                await outbox.basic_publish(BODY, routing_key=queue)
                samples.append((await arrived - t0) * 1000)
            return samples
        finally:
            await consumer.close()

    return body


# --- memory -------------------------------------------------------------------------------------------


def rss(pid: int | None) -> float | None:
    """Resident set size in MB, or None when the process is not visible to us."""
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except (psutil.Error, OSError):
        return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` (0.0 if not visible)."""
    try:
        times = psutil.Process(pid).cpu_times() if pid is not None else None
    except (psutil.Error, OSError):
        times = None
    return times.user + times.system if times else 0.0


def rabbitmq_pid() -> int | None:
    """The beam.smp process of a local RabbitMQ, if there is exactly one we can see."""
    found = [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "beam.smp" and "rabbit" in " ".join(p.info["cmdline"] or [])
    ]
    return found[0] if len(found) == 1 else None


async def measure_rss(target: Target, n: int) -> None:
    """Idle RSS and its growth with ``n`` queued messages, in MB."""
    idle = rss(target.pid)

    async def body(connection, queue):
        await fill(connection, queue, n)
        await asyncio.sleep(0.5)  # let the allocator settle before reading RSS
        full = rss(target.pid)
        return None if full is None or idle is None else full - idle

    target.results["rss_idle"], target.results["rss_fill"] = idle, await with_queue(target.url, body)


async def restart_to_ready(process: BrokerProcess, n: int) -> tuple[float, int]:
    """Fill a durable queue with ``n`` persistent messages, SIGKILL the broker, restart it: seconds from
    the restart call until the queue serves all ``n`` again, and how many came back."""
    connection = await aiormq.connect(process.url)
    channel = await connection.channel()
    queue = (
        await channel.queue_declare(f"bench-restart-{uuid.uuid4().hex[:8]}", durable=True, arguments=QUEUE_ARGS)
    ).queue
    await blast(process.url, queue, n, persistent=True)
    await wait_depth(channel, queue, n)
    await connection.close()
    await asyncio.sleep(0.5)  # the log has been handed to the OS (it survives a process kill)
    await process.crash()
    t0 = time.perf_counter()
    await process.restart()
    connection = await aiormq.connect(process.url)
    try:
        channel = await connection.channel()
        back = (await channel.queue_declare(queue, passive=True)).message_count
        seconds = time.perf_counter() - t0
        await channel.queue_delete(queue)
    finally:
        await connection.close()
    return seconds, back


# --- the blocked loop ---------------------------------------------------------------------------------


def _answer_ms(port: int, out: list[float]) -> None:
    """In a thread: ms from connecting to the broker until its Connection.Start arrives."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(PROTOCOL_HEADER)
        s.recv(7)
    out.append((time.perf_counter() - t0) * 1000)


async def blocked_answer_ms(url: str, block_s: float) -> float:
    """How long another client waits for the broker while this event loop is blocked for block_s."""
    out: list[float] = []
    thread = threading.Thread(target=_answer_ms, args=(urlsplit(url).port, out))
    thread.start()
    time.sleep(block_s)  # noqa: ASYNC251 -- on purpose: the notebook cell that blocks the kernel
    await asyncio.to_thread(thread.join)  # an in-loop broker answers only now that the loop runs again
    return out[0]


# --- driver -------------------------------------------------------------------------------------------


async def run_workloads(targets: list[Target], in_loop: Target, durable: Target, sizes: Sizes) -> None:
    """Every workload in rounds, the brokers taking turns; the in-loop broker only where it tells; the
    persistent ones on ``durable`` (the embedded broker with a data directory) instead of the embedded one."""
    per_round = sizes.messages // sizes.rounds
    workloads = [
        ("pub", publish_no_confirms),
        ("pub_each", publish_confirm_each),
        ("pub_batch", publish_confirm_batches),
        ("con1", lambda n: consume(n, 1)),
        ("con10", lambda n: consume(n, 10)),
        ("con100", lambda n: consume(n, 100)),
        ("ppub_each", lambda n: publish_confirm_each(n, PERSISTENT)),
        ("ppub_batch", lambda n: publish_confirm_batches(n, properties=PERSISTENT)),
    ]
    in_loop_keys = {"pub", "pub_batch", "con100"}  # enough to show the cost of sharing one loop
    for key, make in workloads:
        runners = targets + ([in_loop] if key in in_loop_keys else [])
        if key.startswith("ppub"):
            runners = [durable] + targets[1:]
        elapsed = dict.fromkeys((t.name for t in runners), 0.0)
        for _ in range(sizes.rounds):
            for target in runners:
                broker0, client0 = cpu_seconds(target.pid), time.process_time()
                elapsed[target.name] += await with_queue(target.url, make(per_round))
                target.cpu_broker += cpu_seconds(target.pid) - broker0
                target.cpu_client += time.process_time() - client0
        for target in runners:
            target.results[key] = per_round * sizes.rounds / elapsed[target.name]
            print(
                f"  {key:10} {target.name:9} {target.results[key]:>10,.0f} msg/s  ({elapsed[target.name]:.1f} s)",
                file=sys.stderr,
            )
    samples: dict[str, list[float]] = {t.name: [] for t in targets + [in_loop]}
    for _ in range(sizes.rounds):
        for target in targets + [in_loop]:
            samples[target.name] += await with_queue(target.url, round_trips(sizes.round_trips // sizes.rounds))
    for target in targets + [in_loop]:
        target.results["rt50"] = percentile(samples[target.name], 50)
        target.results["rt99"] = percentile(samples[target.name], 99)


ROWS = [  # key, label, unit, kind of target, limit
    ("pub", "publish, no confirms", "msg/s", ">=", 1.0),
    ("pub_each", "publish, confirm each", "msg/s", ">=", 1.0),
    ("pub_batch", "publish, confirms per 100", "msg/s", ">=", 1.0),
    ("con1", "consume + ack, prefetch 1", "msg/s", ">=", 1.0),
    ("con10", "consume + ack, prefetch 10", "msg/s", ">=", 1.0),
    ("con100", "consume + ack, prefetch 100", "msg/s", ">=", 1.0),
    ("rt50", "round trip p50", "ms", "<=", 1.2),
    ("rt99", "round trip p99", "ms", None, None),
    ("rss_idle", "broker RSS idle", "MB", "MB", 40.0),
    ("rss_fill", "broker RSS growth, 100k queued", "MB", "MB", 60.0),
    ("ppub_each", "persistent, confirm each", "msg/s", None, None),
    ("ppub_batch", "persistent, confirms per 100", "msg/s", None, None),
    ("restart", "restart to ready, 100k persistent", "s", None, None),
]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if unit == "msg/s" else f"{value:.2f}"


def verdict(kind: str | None, limit: float | None, mine: float | None, ratio: float | None) -> tuple[str, str]:
    """(target text, PASS/MISS/n/a) for one row."""
    if kind is None:
        return "", ""
    if kind == "MB":
        return f"<= {limit:g} MB", "n/a" if mine is None else ("PASS" if mine <= limit else "MISS")
    if ratio is None:
        return f"ratio {kind} {limit:g}", "n/a"
    return f"ratio {kind} {limit:g}", "PASS" if (ratio >= limit if kind == ">=" else ratio <= limit) else "MISS"


def report(
    sizes: Sizes,
    embedded: Target,
    rabbit: Target | None,
    in_loop: Target,
    blocked: dict[str, float],
    load: float,
    seconds: float,
) -> str:
    lines = [
        f"# bench/broker.py: {sizes.messages:,} x {len(BODY)} B messages per throughput workload in "
        f"{sizes.rounds} interleaved rounds, {sizes.round_trips:,} round trips, {sizes.fill:,} queued for RSS",
        f"# load average at start {load:.2f} on {os.cpu_count()} cores; RabbitMQ: "
        f"{urlsplit(rabbit.url).netloc.split('@')[-1] if rabbit else 'not measured (set AMQP_URL)'}",
        "",
    ]
    head = (
        f"{'workload':31} {'unit':5} {'embedded':>9} {'rabbitmq':>9} {'ratio':>6}  {'target':14} {'':4}  {'in-loop':>8}"
    )
    lines += [head, "-" * len(head)]
    for key, label, unit, kind, limit in ROWS:
        if key == "rss_fill" and sizes.fill != 100_000:  # scale the budget with the fill
            label, limit = f"broker RSS growth, {sizes.fill // 1000}k queued", 60.0 * sizes.fill / 100_000
        if key == "restart" and sizes.fill != 100_000:
            label = f"restart to ready, {sizes.fill // 1000}k persistent"
        mine = embedded.results.get(key)
        theirs = rabbit.results.get(key) if rabbit else None
        ratio = mine / theirs if mine is not None and theirs else None
        target, mark = verdict(kind, limit, mine, ratio)
        lines.append(
            f"{label:31} {unit:5} {fmt(mine, unit):>9} {fmt(theirs, unit):>9} "
            f"{'n/a' if ratio is None else f'{ratio:.2f}':>6}  {target:14} {mark:4}  "
            f"{fmt(in_loop.results.get(key), unit):>8}"
        )
    lines.append("")
    if embedded.results.get("restarted") is not None:
        lines.append(
            f"restart to ready: SIGKILL, restart, then {embedded.results['restarted']:,.0f} of {sizes.fill:,} "
            "persistent messages served again; persistent rows: embedded with --data-dir (fsync per "
            "confirm batch), all other embedded rows without"
        )
    for t in (embedded, rabbit):
        if t is not None and t.pid is not None and t.cpu_client:
            lines.append(
                f"CPU over the throughput workloads, {t.name}: broker {t.cpu_broker:.1f} s, aiormq clients "
                f"{t.cpu_client:.1f} s (broker/client {t.cpu_broker / t.cpu_client:.2f})"
            )
    lines += [
        "",
        f"another client's wait for connection.start while the loop that owns the broker is blocked "
        f"{sizes.block_s:g} s:",
        f"  broker in its own process (BrokerProcess) {blocked['process']:9.1f} ms",
        f"  broker in the blocked event loop          {blocked['in-loop']:9.1f} ms",
        "",
        f"# total {seconds:.0f} s",
    ]
    return "\n".join(lines)


async def main(sizes: Sizes, output: str | None) -> None:
    t0, load = time.perf_counter(), os.getloadavg()[0]
    process = await BrokerProcess.start()
    data_dir = tempfile.TemporaryDirectory(prefix="bench-broker-")
    disk = await BrokerProcess.start(data_dir=data_dir.name)
    broker = await Broker().start()
    try:
        await asyncio.sleep(1.0)  # idle means idle: let the fresh process settle
        embedded = Target("embedded", process.url, process.pid)
        rabbit_url = os.environ.get("AMQP_URL")
        rabbit = Target("rabbitmq", rabbit_url, rabbitmq_pid()) if rabbit_url else None
        in_loop = Target("in-loop", broker.url, None)
        targets = [embedded] + ([rabbit] if rabbit else [])
        durable = Target("embedded+fsync", disk.url, disk.pid, embedded.results)  # its rows: the embedded column
        for target in targets:
            await measure_rss(target, sizes.fill)
            print(
                f"  RSS       {target.name:9} idle {fmt(target.results['rss_idle'], 'MB')} MB, "
                f"+{fmt(target.results['rss_fill'], 'MB')} MB with {sizes.fill:,} queued ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
        await run_workloads(targets, in_loop, durable, sizes)
        embedded.results["restart"], embedded.results["restarted"] = await restart_to_ready(disk, sizes.fill)
        blocked = {
            "process": await blocked_answer_ms(process.url, sizes.block_s),
            "in-loop": await blocked_answer_ms(broker.url, sizes.block_s),
        }
    finally:
        await broker.stop()
        await process.stop()
        await disk.stop()
        data_dir.cleanup()
    text = report(sizes, embedded, rabbit, in_loop, blocked, load, time.perf_counter() - t0)
    print(text)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    parser.add_argument("--output", help="also write the report to this file")
    ns = parser.parse_args()
    asyncio.run(main(QUICK if ns.quick else FULL, ns.output))
