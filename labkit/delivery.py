"""Chapter 06's experiments on delivery guarantees, run on a lab: crashes and duplicates, and ordering.

Why: the chapter's cells should read as a lab protocol (start, run, plot, check), while what an
experiment does -- publish a backlog, start consumers that crash on purpose, count every charge -- is
plumbing that deserves tests. Each function runs one experiment on its own fresh queues and deletes
them afterwards; every wait is bounded (:func:`labkit.lifecycle.wait_until`).

    naive = await run_payments(lab, n=100, crash_every=15, dedupe=False)
    naive["duplicates"] == naive["crashes"]          # each crash after the charge, before the ack
    ordering = await run_ordering(lab, "competing")  # how often events are applied out of order
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from labkit._validate import integer, one_of, positive
from labkit.consumers import publish
from labkit.deadletter import RetryTopology
from labkit.faults import Reset
from labkit.history.events import KEY_HEADER
from labkit.idempotency import Ledger
from labkit.lab import Lab
from labkit.lifecycle import wait_until
from labkit.ordering import breaks_per_key, order_breaks, partition
from labkit.publisher import Publisher

__all__ = ["SETUPS", "publish_all", "run_ordering", "run_payments", "run_poison", "run_publisher"]

#: The consumer set-ups :func:`run_ordering` compares.
SETUPS = ("one consumer", "competing", "requeue", "partitioned")


async def publish_all(
    lab: Lab, messages: Sequence[tuple[Any, ...]], *, wait: bool = True, timeout: float = 30.0
) -> None:
    """Publish ``(queue, message_id, body)`` triples in order, fast (no confirms); a fourth element is the
    key order is kept per (a customer: the ``x-order-key`` header a recorded history reads). With ``wait``,
    return only once the broker holds them all (a backlog for consumers that start next)."""
    channel = await lab.channel(publisher_confirms=False)
    try:
        for queue, message_id, body, *key in messages:
            await publish(channel, queue, body, message_id=message_id, headers={KEY_HEADER: key[0]} if key else None)
        for queue in {q for q, *_ in messages} if wait else ():
            expected = sum(m[0] == queue for m in messages)

            async def arrived(queue: str = queue, expected: int = expected) -> bool:
                return await lab.queue_depth(queue) >= expected

            await wait_until(arrived, timeout=timeout, interval=0.005, what=f"{expected} messages in {queue}")
    finally:
        await channel.close()


async def run_payments(
    lab: Lab,
    n: int = 100,
    crash_every: int = 15,
    *,
    dedupe: bool = False,
    amount: float = 20.0,
    progress: bool = True,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Publish ``n`` payments; consumers charge them into a :class:`labkit.idempotency.Ledger` and crash
    on every ``crash_every``-th message after the charge and before the ack; a new consumer takes over
    each time. With ``dedupe`` the ledger skips message ids it has charged. Returns the counts."""
    integer("n", n, 1)
    integer("crash_every", crash_every, 1)
    positive("amount", amount)
    queue, ledger = lab.unique("payments"), Ledger()
    seen = {"deliveries": 0, "redelivered": 0}

    async def charge(message: Any) -> None:
        seen["deliveries"] += 1
        seen["redelivered"] += message.delivery.redelivered
        ledger.charge(message.header.properties.message_id, amount, dedupe=dedupe)

    await lab.declare_queue(queue)
    await publish_all(
        lab, [(queue, f"order-{i}", json.dumps({"order": i, "amount": amount}).encode()) for i in range(n)]
    )
    acked = crashes = 0
    with tqdm(total=n, desc="dedupe" if dedupe else "naive", disable=not progress) as bar:
        while acked < n:  # every message is acknowledged exactly once, by the consumer that finished it
            worker = await lab.consumer(
                queue,
                declare=False,
                prefetch=10,
                work_time=0.001,
                handler=charge,
                crash_after=crash_every,
                name=f"payments-{crashes}",
            )

            def finished(worker: Any = worker, acked: int = acked) -> bool:
                bar.update(acked + worker.processed - bar.n)
                return bool(worker.crashed) or acked + worker.processed >= n

            await wait_until(
                finished,
                timeout=timeout,
                interval=0.005,
                what=f"{n} payments acknowledged (the consumer started at {acked})",
            )
            acked += worker.processed
            crashes += worker.crashed
            await lab.remove(worker)
    await lab.delete_queue(queue)
    return {
        "published": n,
        "crashes": crashes,
        **seen,
        "charges": ledger.charges(),
        "duplicates": ledger.duplicates(),
        "lost": n - len(ledger.charged_ids()),
        "billed": ledger.total(),
    }


async def run_ordering(
    lab: Lab,
    setup: str,
    events: int = 120,
    *,
    customers: int = 4,
    partitions: int = 4,
    consumers: int = 3,
    per_partition: int = 1,
    progress: bool = True,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Publish ``events`` events of ``customers`` customers and apply them with one of :data:`SETUPS`:
    one consumer; ``consumers`` competing ones; one that fails 10 % of messages and requeues them; or one
    queue per partition (by customer) with ``per_partition`` consumers each. Returns the order applied
    (``applied``: (customer, per-customer seq, global seq)) and the breaks, overall and per customer."""
    one_of("setup", setup, SETUPS)
    for name, value in (
        ("events", events),
        ("customers", customers),
        ("partitions", partitions),
        ("consumers", consumers),
        ("per_partition", per_partition),
    ):
        integer(name, value, 1)
    base = lab.unique(f"ledger-{setup.split()[0]}")
    applied: list[tuple[str, int, int]] = []

    async def apply(message: Any) -> None:
        e = json.loads(message.body)
        applied.append((e["customer"], e["seq"], e["n"]))

    if setup == "partitioned":
        queues = [f"{base}.p{k}" for k in range(partitions)]
        workers: list[dict[str, Any]] = [{"queue": q} for q in queues for _ in range(per_partition)]
    else:
        queues = [base]
        count = consumers if setup == "competing" else 1
        failures = {"failure_rate": 0.1, "requeue_failed": True} if setup == "requeue" else {}
        workers = [{"queue": base, **failures} for _ in range(count)]
    for q in queues:
        await lab.declare_queue(q)
    backlog = []
    for n in range(events):
        customer = f"customer-{n % customers}"
        target = queues[partition(customer, partitions)] if setup == "partitioned" else base
        backlog.append(
            (target, f"event-{n}", json.dumps({"customer": customer, "seq": n // customers, "n": n}).encode(), customer)
        )
    options = {"declare": False, "prefetch": 10, "work_time": 0.003, "distribution": "exponential", "handler": apply}
    started = [await lab.consumer(w.pop("queue"), name=f"{setup}-{i}", **options, **w) for i, w in enumerate(workers)]
    await publish_all(lab, backlog, wait=False)  # all consumers are ready; publishing outpaces them
    with tqdm(total=events, desc=setup, disable=not progress) as bar:

        def done() -> bool:
            bar.update(len(applied) - bar.n)
            return len(applied) >= events

        await wait_until(
            done, timeout=timeout, interval=0.005, what=lambda: f"{events} events applied ({len(applied)} so far)"
        )
    for worker in started:
        await lab.remove(worker)
    for q in queues:
        await lab.delete_queue(q)
    return {
        "applied": applied,
        "global": order_breaks([n for _, _, n in applied]),
        "per customer": sum(breaks_per_key([(c, s) for c, s, _ in applied]).values()),
    }


async def run_poison(
    lab: Lab, delay_ms: int = 100, max_attempts: int = 4, good: int = 20, amount: float = 20
) -> dict[str, Any]:
    """``good`` payments and one poison message (a negative amount, the middle one) through a retry topology.

    The poison message is retried ``max_attempts`` times, ``delay_ms`` apart, then parked in the DLQ.
    Returns ``{"topology", "channel", "tried", "worker"}``: ``tried`` maps each message id to the times of
    its attempts. The topology and its channel stay open for the chapter to inspect and replay; the caller
    deletes them (``await result["topology"].delete(result["channel"])``).
    """
    positive("delay_ms", delay_ms)
    integer("max_attempts", max_attempts, 1)
    integer("good", good, 0)
    topo = RetryTopology(lab.unique("payments"), delay_ms=delay_ms, max_attempts=max_attempts)
    channel = await lab.channel()
    await topo.declare(channel)
    tried: dict[str, list[float]] = {}

    async def handle(message: Any) -> None:
        tried.setdefault(message.header.properties.message_id, []).append(time.monotonic())
        if json.loads(message.body)["amount"] < 0:
            raise ValueError("amount must be >= 0")

    worker = await lab.consumer(
        topo.queue,
        declare=False,
        requeue_failed=False,
        work_time=0.001,
        handler=topo.guard(handle),
        name=f"guarded {topo.queue}",
    )
    for i in range(good + 1):
        charge = -5 if i == good // 2 else amount
        await lab.publish(topo.queue, json.dumps({"order": i, "amount": charge}).encode(), message_id=f"order-{i}")

    async def parked() -> bool:  # the poison message in the DLQ, every good one processed
        return await lab.queue_depth(topo.dlq) >= 1 and worker.processed >= good + 1

    await wait_until(parked, timeout=10 + max_attempts * delay_ms / 1000, what="the poison message parked")
    await lab.remove(worker)
    return {"topology": topo, "channel": channel, "tried": tried, "worker": worker}


async def run_publisher(
    lab: Lab, confirms: bool, messages: int = 150, resets_at: Sequence[int] = (30, 75, 120), progress: bool = True
) -> dict[str, Any]:
    """Publish ``messages`` payments through a fault proxy that resets the connection before each index in
    ``resets_at``; count what the application believes it sent against what the queue received.

    With ``confirms=False`` a publish "succeeds" once its bytes are in the socket, so messages in flight at a
    reset are lost unknowingly; with confirms (and the publisher's retry) none is lost, some may be doubled.
    """
    integer("messages", messages, 1)
    queue = lab.unique("confirms" if confirms else "fire-and-forget")
    channel = await lab.channel()
    await lab.declare_queue(queue)
    proxy = await lab.proxy("amqp", name="publisher -> broker")
    publisher = await Publisher(proxy.via(lab.amqp_url), confirms=confirms, backoff=0.01).start()
    loop = asyncio.get_running_loop()
    for i in tqdm(range(messages), desc="confirms" if confirms else "fire-and-forget", disable=not progress):
        if i in resets_at:
            proxy.set(Reset(direction="upstream"))  # the next bytes the publisher sends kill the connection
            loop.call_later(0.05, proxy.clear)
        await publisher.publish(queue, b'{"amount": 20}', message_id=f"payment-{i}")
    await publisher.stop()
    await lab.remove(proxy)
    await asyncio.sleep(0.1)  # let the broker finish what it received
    depth = await lab.queue_depth(queue)
    received = []
    for _ in range(depth):
        message = await channel.basic_get(queue, no_ack=True)
        received.append(message.header.properties.message_id)
    await lab.delete_queue(queue)
    sent = set(publisher.sent)
    return {
        "sent (as far as the app knows)": len(sent),
        "received": len(received),
        "lost": len(sent - set(received)),
        "duplicates": len(received) - len(set(received)),
        "errors seen": publisher.errors,
        "connections": publisher.connections,
    }
