"""What recording a history costs: the broker tap and the client-side recorder, on bench/broker.py's workloads.

Not a test: throughput depends on the machine and its load, so this prints rates and the on/off ratio
against the target of DESIGN.md §5 (recording costs < 5 % of throughput when on, nothing when off).

- **Broker side** (:mod:`labkit.broker.tap`): two embedded brokers in their own processes, one started
  with ``history=<file>``, the other without; bench/broker.py's workloads (publish without confirms,
  publish with each confirm awaited, consume + ack at prefetch 100) run against both, round by round in
  turn, so both see the same background load.
- **Client side** (:mod:`labkit.history.recorder`): the same workloads through labkit's own parts
  (``labkit.consumers.publish`` and a ``labkit.consumers.Consumer``), whose hooks record a history, with
  the recorder off and on in alternate rounds against one broker.
- **Off**: what a hook costs when recording is off, timed directly (the attribute test, and the call of
  a hook that returns at once) and set against the CPU time each message costs its process.

Run: ``python bench/history.py [--quick]`` (``AMQP_URL`` adds the client-side rows on RabbitMQ).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as broker_bench

from labkit.broker.process import BrokerProcess
from labkit.broker.vhost import VHost
from labkit.consumers import Consumer, publish
from labkit.history import recorder
from labkit.lifecycle import wait_until

LIMIT = 0.05  # the target: recording costs less than 5 % of throughput


def labkit_publish(confirms: bool):
    """bench/broker.py's publish workloads, through labkit's publish (and so through the recorder's hooks)."""

    def make(n: int):
        async def body(connection, queue):
            channel = await connection.channel(publisher_confirms=confirms)
            t0 = time.perf_counter()
            for i in range(n):
                await publish(channel, queue, broker_bench.BODY, message_id=f"m{i}")
            if not confirms:
                await broker_bench.wait_depth(channel, queue, n)
            return time.perf_counter() - t0

        return body

    return make


def labkit_consume(prefetch: int):
    """bench/broker.py's consume workload, through a labkit Consumer (deliveries and acks recorded)."""

    def make(n: int):
        async def body(connection, queue):
            await broker_bench.fill(connection, queue, n)
            consumer = Consumer(
                str(connection.url), queue, declare=False, work_time=0.0, prefetch=prefetch, name="bench-consumer"
            )
            t0 = time.perf_counter()
            await consumer.start()
            try:
                await wait_until(
                    lambda: consumer.processed >= n,
                    timeout=120,
                    interval=0.002,
                    what=lambda: f"{consumer.processed} of {n} acks",
                )
                return time.perf_counter() - t0
            finally:
                await consumer.stop()

        return body

    return make


async def alternate(
    runs: dict[str, tuple[str, object, int | None]], make, n: int, rounds: int, before=None
) -> dict[str, float]:
    """Rates of the runs "off" and "on" (url, switch, pid whose CPU to count: None for this process), taken
    in adjacent pairs whose order swaps every round. Returns msg/s of each, the median over rounds of the
    on/off time ratio (robust to a round that a busy neighbour slowed down) and each run's CPU microseconds
    per message (``cpu <name>``); ``before(switch)`` sets a run up."""
    elapsed, cpu = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
    ratios = []
    for r in range(rounds):
        this_round = {}
        for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
            url, switch, pid = runs[name]
            if before is not None:
                before(switch)
            cpu0 = broker_bench.cpu_seconds(pid) if pid else time.process_time()
            try:
                this_round[name] = await broker_bench.with_queue(url, make(n))
            finally:
                recorder.stop()
            cpu[name] += (broker_bench.cpu_seconds(pid) if pid else time.process_time()) - cpu0
            elapsed[name] += this_round[name]
        ratios.append(this_round["on"] / this_round["off"])
    rates = {name: n * rounds / e for name, e in elapsed.items()}
    rates["median cost"] = statistics.median(ratios) - 1
    rates.update({f"cpu {name}": c / (n * rounds) * 1e6 for name, c in cpu.items()})
    return rates


def record_if(on: object) -> None:
    if on:
        recorder.start()


def off_cost() -> dict[str, float]:
    """Nanoseconds per hook when recording is off: the broker's test and the client's hook call."""
    vhost = VHost.__new__(VHost)
    vhost.tap = None
    loops = 1_000_000
    broker_ns = timeit.timeit("vhost.tap is not None", globals={"vhost": vhost}, number=loops) / loops * 1e9
    client_ns = (
        timeit.timeit("on_settle('ack', 'c', None)", globals={"on_settle": recorder.on_settle}, number=loops)
        / loops
        * 1e9
    )
    return {"broker": broker_ns, "client": client_ns}


def line(label: str, rates: dict[str, float]) -> str:
    cost = rates["median cost"]
    cpu = f"{rates['cpu off']:.1f} / {rates['cpu on']:.1f} µs ({rates['cpu on'] / rates['cpu off'] - 1:+.1%})"
    return (
        f"| {label} | {rates['off']:,.0f} | {rates['on']:,.0f} | {cost * 100:+.1f} % | {cpu} | "
        f"{'PASS' if cost < LIMIT else 'MISS'} |"
    )


async def main(quick: bool) -> None:
    n, rounds = (1_000, 4) if quick else (2_500, 20)
    print(f"load average {os.getloadavg()[0]:.1f}; {n} messages x {rounds} rounds per workload and setting\n")
    folder = tempfile.mkdtemp(prefix="bench-history-")
    # bench/broker.py's with_queue declares a transient queue, which the default RabbitMQ 4.3 profile refuses
    # (as RabbitMQ 4.3 does): these brokers behave like 3.10, which allows it.
    plain = await BrokerProcess.start(rabbitmq="3.10")
    tapped = await BrokerProcess.start(rabbitmq="3.10", history=os.path.join(folder, "broker.tsv"))
    rows = [
        "| workload | off (msg/s) | on (msg/s) | cost when on (median of paired rounds) | CPU per message off / on "
        "(broker for the tap, client for the recorder) | < 5 % |",
        "|---|---|---|---|---|---|",
    ]
    try:
        brokers = {"off": (plain.url, None, plain.pid), "on": (tapped.url, None, tapped.pid)}
        for label, make in (
            ("broker tap: publish, no confirms", broker_bench.publish_no_confirms),
            ("broker tap: publish, confirm each", broker_bench.publish_confirm_each),
            ("broker tap: consume + ack, prefetch 100", lambda k: broker_bench.consume(k, 100)),
        ):
            rows.append(line(label, await alternate(brokers, make, n, rounds)))
            print(rows[-1], file=sys.stderr)
        targets = [("embedded", plain.url)] + (
            [("RabbitMQ", os.environ["AMQP_URL"])] if os.environ.get("AMQP_URL") else []
        )
        for where, url in targets:
            switches = {"off": (url, False, None), "on": (url, True, None)}
            for label, make in (
                ("publish, no confirms", labkit_publish(False)),
                ("publish, confirm each", labkit_publish(True)),
                ("consume + ack, prefetch 100", labkit_consume(100)),
            ):
                rows.append(
                    line(
                        f"client recorder ({where}): {label}",
                        await alternate(switches, make, n, rounds, before=record_if),
                    )
                )
                print(rows[-1], file=sys.stderr)
    finally:
        await tapped.stop()
        await plain.stop()
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    ns = off_cost()
    print("\n".join(rows))
    print(
        f"\nOff: a broker hook costs {ns['broker']:.0f} ns (an attribute test), a client hook "
        f"{ns['client']:.0f} ns (a call that returns at once), per message and hook; a message costs its "
        f"process tens of microseconds (the rates above), so off is < 0.1 % (nothing measurable)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    asyncio.run(main(parser.parse_args().quick))
