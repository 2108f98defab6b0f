"""labkit.consumers: aiormq consumers against the lab's broker (embedded, or AMQP_URL)."""

import asyncio

import pytest

from labkit.consumers import Consumer
from labkit.lifecycle import wait_until
from labkit.queues import declare_run_queue


async def test_consumer_acks_after_work_and_records_end_to_end_latency(lab, unique):
    queue = unique("work")
    worker = await lab.consumer(queue, work_time=0.03, prefetch=5)
    # published together (a sequence of confirmed publishes would spread them out on a loaded machine)
    await asyncio.gather(*(lab.publish(queue, f"m{i}".encode()) for i in range(6)))
    await worker.wait_processed(6)
    assert await lab.queue_depth(queue) == 0
    records = list(worker.records)
    assert all(r.ok for r in records)
    assert all(r.service_time >= 0.03 for r in records)
    # concurrency 1: messages are worked one after another, so later ones waited longer in the queue
    assert all(later.start >= earlier.end for earlier, later in zip(records, records[1:]))
    assert records[-1].latency > records[0].latency + 3 * 0.03
    await lab.delete_queue(queue)


async def test_concurrency_works_on_several_messages_at_once(lab, unique):
    queue = unique("work")
    serial = await lab.consumer(queue, work_time=0.1, prefetch=4, concurrency=1, name="serial")
    for _ in range(4):
        await lab.publish(queue)
    await wait_until(lambda: serial.processed == 4)
    await lab.remove(serial)
    wide = await lab.consumer(queue, work_time=0.1, prefetch=4, concurrency=4, name="wide")
    for _ in range(4):
        await lab.publish(queue)
    await wait_until(lambda: wide.processed == 4)
    span = lambda c: max(r.end for r in c.records) - min(r.start for r in c.records)  # noqa: E731
    assert span(wide) < span(serial) / 2
    await lab.delete_queue(queue)


async def test_publish_and_consume_share_one_trace(lab, unique):
    queue = unique("traced")
    await lab.consumer(queue, work_time=0.0)
    cid = await lab.publish(queue, b"x", correlation_id="cid-async")
    assert cid == "cid-async"
    await wait_until(lambda: len(lab.tracer.trace(cid)) == 3)
    publish, queued, consume = lab.tracer.trace(cid)
    assert (publish.kind, queued.kind, consume.kind) == ("publish", "queue", "consume")
    assert queued.parent_id == publish.span_id and consume.parent_id == queued.span_id
    await lab.delete_queue(queue)


async def test_idempotent_consumer_skips_a_duplicate_message_id(lab, unique):
    queue = unique("orders")
    effects = []

    async def handler(message):
        effects.append(message.body)

    worker = await lab.consumer(queue, work_time=0.0, idempotent=True, handler=handler)
    await lab.publish(queue, b"order-1", message_id="m-1")
    await lab.publish(queue, b"order-1", message_id="m-1")
    await wait_until(lambda: worker.processed + worker.duplicates == 2)
    assert (worker.processed, worker.duplicates, effects) == (1, 1, [b"order-1"])
    await lab.delete_queue(queue)


async def test_crash_before_ack_redelivers_and_duplicates_the_side_effect(lab, unique):
    queue = unique("payments")
    effects = []

    async def charge(message):
        effects.append(message.header.properties.message_id)

    crashing = await lab.consumer(queue, work_time=0.0, crash_after=1, handler=charge, name="crashing")
    await lab.publish(queue, b"charge 10 EUR", message_id="pay-1")
    await wait_until(lambda: crashing.crashed)
    assert not crashing.running and crashing.processed == 0
    survivor = await lab.consumer(queue, work_time=0.0, handler=charge, name="survivor")
    await wait_until(lambda: survivor.processed == 1)
    assert effects == ["pay-1", "pay-1"], "at-least-once: the side effect happened twice"
    assert survivor.redelivered == 1 and survivor.records[0].info["redelivered"] is True
    await lab.delete_queue(queue)


async def test_failures_without_requeue_drop_the_message(lab, unique):
    queue = unique("poison")
    worker = await lab.consumer(queue, work_time=0.0, failure_rate=1.0, requeue_failed=False)
    for _ in range(3):
        await lab.publish(queue)
    await wait_until(lambda: worker.failed == 3)
    await asyncio.sleep(0.1)
    assert worker.failed == 3 and worker.processed == 0  # not redelivered
    assert await lab.queue_depth(queue) == 0
    assert all(not r.ok and r.error == "injected failure" for r in worker.records)
    await lab.delete_queue(queue)


async def test_consumers_given_the_same_draws_fail_the_same_messages(lab, unique):
    """Common random numbers: ``draws`` names the random streams, so two consumers with the same draws
    make the same choices, message for message, whatever their names; without it, each name has its own."""

    async def outcomes(name, draws=None):
        queue = unique("draws")
        worker = await lab.consumer(
            queue, work_time=0.0, failure_rate=0.5, requeue_failed=False, name=name, draws=draws
        )
        for _ in range(24):
            await lab.publish(queue)
        await wait_until(lambda: len(worker.records) == 24)
        await lab.delete_queue(queue)
        return [r.ok for r in worker.records]

    shared = await outcomes("low load", draws="crn"), await outcomes("high load", draws="crn")
    assert shared[0] == shared[1] and 0 < sum(shared[0]) < 24
    assert await outcomes("low load") != await outcomes("high load")


async def test_sampled_queue_depth_rises_and_drains(lab, unique):
    queue = unique("depth")
    await lab.declare_queue(queue)
    sampler = await lab.sample_queue(queue, interval=0.02)
    for _ in range(20):
        await lab.publish(queue)
    await wait_until(lambda: sampler.max() == 20)
    worker = await lab.consumer(queue, work_time=0.0, prefetch=10)
    await wait_until(lambda: worker.processed == 20)
    await wait_until(lambda: sampler.samples[-1][1] == 0)
    await lab.remove(sampler)
    await lab.delete_queue(queue)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"work_time": -0.1}, "work_time"),
        ({"distribution": "pareto"}, "distribution"),
        ({"prefetch": -1}, "prefetch"),
        ({"concurrency": 0}, "concurrency"),
        ({"failure_rate": -0.1}, "failure_rate"),
        ({"crash_after": 0}, "crash_after"),
        ({"max_records": 0}, "max_records"),
        ({"arguments": ["x-max-length"]}, "arguments"),
        ({"bindings": [("exchange",)]}, "bindings"),
        ({"handler": 42}, "handler"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Consumer("amqp://guest:guest@127.0.0.1:5672/", "q", **kwargs)
    with pytest.raises(ValueError, match="queue"):
        Consumer("amqp://guest:guest@127.0.0.1:5672/", "")


async def test_one_trace_follows_http_then_amqp_then_http(lab, unique):
    queue = unique("emails")
    smtp = await lab.service("smtp", service_time=0.0)

    async def send_mail(message):
        await lab.call(smtp)  # no ids passed: the active consume span carries the trace

    async def announce(body):
        await lab.publish(queue, body)  # no ids passed: the active server span carries the trace
        return {"queued": True}

    await lab.consumer(queue, work_time=0.0, handler=send_mail)
    order = await lab.service("order", service_time=0.0, handler=announce)
    answer = await lab.call(order, correlation_id="cid-mixed")
    assert answer["queued"]
    await wait_until(lambda: any(s.name == "smtp" for s in lab.tracer.trace("cid-mixed")))
    await wait_until(lambda: any(s.kind == "consume" for s in lab.tracer.trace("cid-mixed")))
    spans = lab.tracer.trace("cid-mixed")
    kinds = [s.kind for s in spans]
    assert kinds[:3] == ["client", "server", "publish"] and "queue" in kinds and "consume" in kinds
    by_id = {s.span_id: s for s in spans}
    smtp_span = next(s for s in spans if s.name == "smtp")
    chain = []
    while smtp_span is not None:  # walk up to the root: every hop is linked
        chain.append(smtp_span.kind)
        smtp_span = by_id.get(smtp_span.parent_id)
    assert chain == ["server", "client", "consume", "queue", "publish", "server", "client"]
    await lab.delete_queue(queue)


async def test_rejected_messages_go_to_the_dead_letter_queue(lab, unique):
    queue, dlq = unique("work"), unique("dead")
    channel = await lab.channel()
    await declare_run_queue(channel, dlq)
    worker = await lab.consumer(
        queue,
        work_time=0.0,
        failure_rate=1.0,
        requeue_failed=False,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq},
    )
    await lab.publish(queue, b"poison")
    await wait_until(lambda: worker.failed == 1)
    for _ in range(200):  # dead-lettering is asynchronous in the broker
        if await lab.queue_depth(dlq) == 1:
            break
        await asyncio.sleep(0.02)
    got = await channel.basic_get(dlq, no_ack=True)
    assert got.body == b"poison" and got.header.properties.headers["x-death"][0]["reason"] == "rejected"
    for q in (queue, dlq):
        await lab.delete_queue(q)


async def test_fan_out_reaches_every_bound_consumer(lab, unique):
    exchange = unique("order-placed")
    channel = await lab.channel()
    await channel.exchange_declare(exchange, exchange_type="fanout")
    names = [unique(n) for n in ("email", "analytics", "fulfillment")]
    workers = [await lab.consumer(q, work_time=0.0, bindings=[(exchange, "")]) for q in names]
    await lab.publish("", b"order 1", exchange=exchange)
    await wait_until(lambda: all(w.processed == 1 for w in workers))
    for q in names:
        await lab.delete_queue(q)
    await channel.exchange_delete(exchange)


async def test_wait_processed_returns_once_done_and_names_the_shortfall(lab, unique):
    queue = unique("wait")
    worker = await lab.consumer(queue, work_time=0.0)
    for _ in range(3):
        await lab.publish(queue, b"x")
    await worker.wait_processed(3, timeout=10)
    assert worker.processed == 3
    with pytest.raises(TimeoutError, match=r"4 messages processed \(3 so far\)"):
        await worker.wait_processed(4, timeout=0.05)
    await lab.delete_queue(queue)
