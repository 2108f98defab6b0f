"""Classroom bench: throughput and control-message latency of a simulated class of N learners.

For N = 1, 10, 30, 60 learner processes on each broker (the embedded one always; RabbitMQ when
``AMQP_URL`` is set or 127.0.0.1:5672 with its management API answers): the class consumes a batch of
20 messages per learner with prefetch 10 (service time 1 ms each), and the instructor pings the class
(control message out, every learner's report back) ten times while idle, then ten times while one more
learner floods its inbox as fast as its connection allows. Prints messages/s and the ping's p50/max
round trip to the slowest learner, idle and under the flood. Numbers, not tests: run ``python bench/classroom.py [N ...]``.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time

from pamqp.commands import Basic

from labkit.classroom import Classroom, Learner, SimulatedClass, topology
from labkit.classroom import experiments as ex
from labkit.lab import Lab
from labkit.lifecycle import wait_until

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def measure(n: int, amqp_url: str | None) -> dict:
    lab = await Lab.start(amqp_url=amqp_url)
    classroom = await lab.start(Classroom())
    sim = await lab.start(SimulatedClass(classroom.code, n, service_times=(0.001, 0.001)))
    try:
        t = time.monotonic()
        await classroom.wait_for_learners(n, timeout=60 + 3 * n)
        joined = time.monotonic() - t
        run = await ex.run_work(classroom, 20 * n, prefetch=10, timeout=120)
        idle = await pings(classroom, list(sim.service_times))
        flooder = subprocess.Popen([sys.executable, __file__, "--flood", str(classroom.code)])
        try:
            await wait_until(lambda: "flooder" in classroom.present, timeout=30, what="the flooder joining")
            await asyncio.sleep(0.5)
            flooded = await pings(classroom, list(sim.service_times))
        finally:
            flooder.kill()
            flooder.wait()
        return {
            "n": n,
            "join_s": joined,
            "msg_per_s": run.sent / run.makespan,
            "lost": run.lost,
            "idle": idle,
            "flood": flooded,
        }
    finally:
        await lab.stop()


async def pings(classroom: Classroom, names: list[str]) -> tuple[float, float]:
    """p50 and max (ms) over ten pings of the round trip to the slowest of these learners."""
    worst = []
    for _ in range(10):
        rtt = await classroom.ping(timeout=10, among=names)
        worst.append(max(rtt.values()) if len(rtt) == len(names) else float("inf"))
    return 1000 * statistics.median(worst), 1000 * max(worst)


async def flood(code: str) -> None:
    """A misbehaving learner (its own process): reports as fast as its connection takes them, unconfirmed."""
    learner = await Learner.join(code, "flooder")
    channel = await learner.conn.channel(publisher_confirms=False)
    props = Basic.Properties(user_id=learner.user)
    while True:
        for _ in range(100):
            await channel.basic_publish(b"{}", exchange=topology.INBOX, routing_key="flooder", properties=props)
        await asyncio.sleep(0)


async def main(sizes: list[int]) -> None:
    brokers = [("embedded", None)]
    if _listening(5672) and _listening(15672):
        brokers.append(("rabbitmq", RABBITMQ))
    print(
        f"{'broker':9} {'N':>3} {'join s':>7} {'msg/s':>7} {'lost':>4} {'ping p50/max ms':>16} "
        f"{'under flood p50/max':>20}"
    )
    for name, url in brokers:
        for n in sizes:
            r = await measure(n, url)
            print(
                f"{name:9} {n:>3} {r['join_s']:7.1f} {r['msg_per_s']:7.0f} {r['lost']:>4} "
                f"{r['idle'][0]:8.1f}/{r['idle'][1]:<7.1f} {r['flood'][0]:11.1f}/{r['flood'][1]:<8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood(sys.argv[2]))
    else:
        asyncio.run(main([int(a) for a in sys.argv[1:]] or [1, 10, 30, 60]))
