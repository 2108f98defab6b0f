"""labkit.deadletter: delayed retries, parking after N attempts, delivery limits, DLQ inspection and replay
(real broker: the embedded one, or AMQP_URL)."""

import asyncio

import pytest

from labkit.deadletter import (
    RetryTopology,
    delivery_limited_queue,
    inspect,
    replay,
    take_all,
)
from labkit.lifecycle import wait_until
from labkit.queues import declare_run_queue


async def test_poison_message_is_retried_with_delay_then_parked_after_max_attempts(lab, unique):
    topo = RetryTopology(unique("pay"), delay_ms=20, max_attempts=3)
    channel = await lab.channel()
    await topo.declare(channel)

    async def handle(message):
        if message.body == b"poison":
            raise ValueError("cannot parse")

    await lab.consumer(topo.queue, declare=False, requeue_failed=False, handler=topo.guard(handle))
    await lab.publish(topo.queue, b"poison", message_id="bad")
    await lab.publish(topo.queue, b"fine", message_id="good")

    async def parked():
        return await lab.queue_depth(topo.dlq) == 1

    await wait_until(parked)
    assert topo.attempts_of("bad") == 3 and topo.attempts_of("good") == 1
    assert [a for m, a, _ in topo.log if m == "bad"] == [1, 2, 3]
    [letter] = await inspect(channel, topo.dlq)
    assert letter.message_id == "bad" and letter.body == b"poison"
    assert letter.first_death == f"rejected in {topo.queue}"
    assert letter.deaths == {(topo.queue, "rejected"): 2, (topo.retry_queue, "expired"): 2}
    assert letter.headers["x-attempts"] == 3 and "cannot parse" in letter.headers["x-error"]
    assert await lab.queue_depth(topo.dlq) == 1  # inspecting took nothing away

    # replay starts the message over: after the "fix" it is handled at attempt 1
    topo.log.clear()
    handle_fixed = topo.guard(lambda message: asyncio.sleep(0))
    await lab.remove(lab.consumers[-1])
    await lab.consumer(topo.queue, declare=False, requeue_failed=False, handler=handle_fixed)
    assert await replay(channel, topo.dlq, topo.queue) == 1

    async def handled():
        return topo.log == [("bad", 1, True)]

    await wait_until(handled)
    assert await lab.queue_depth(topo.dlq) == 0
    await topo.delete(channel)


async def test_quorum_delivery_limit_dead_letters_after_limit_plus_one_deliveries(lab, unique):
    queue, dlq = unique("q"), unique("q-dlq")
    channel = await lab.channel()
    await delivery_limited_queue(channel, queue, dlq, limit=2)
    deliveries = []

    async def always_fail(message):
        deliveries.append(message.delivery.redelivered)
        raise RuntimeError("poison")

    await lab.consumer(queue, declare=False, requeue_failed=True, handler=always_fail, work_time=0.0)
    await lab.publish(queue, b"poison")

    async def dead():
        return await lab.queue_depth(dlq) == 1

    await wait_until(dead)
    assert deliveries == [False, True, True]
    [message] = await take_all(channel, dlq)
    assert message.header.properties.headers["x-death"][0]["reason"] == "delivery_limit"
    await channel.queue_delete(queue)
    await channel.queue_delete(dlq)


async def test_take_all_empties_a_queue_in_order(lab, unique):
    queue = unique("all")
    channel = await lab.channel()
    await declare_run_queue(channel, queue)
    for i in range(5):
        await lab.publish(queue, str(i).encode())
    assert [m.body for m in await take_all(channel, queue)] == [b"0", b"1", b"2", b"3", b"4"]
    assert await take_all(channel, queue) == []
    await channel.queue_delete(queue)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryTopology("q", max_attempts=0)
    with pytest.raises(ValueError, match="delay_ms"):
        RetryTopology("q", delay_ms=0)
    with pytest.raises(ValueError, match="name"):
        RetryTopology("")
    with pytest.raises(ValueError, match="handler"):
        RetryTopology("q").guard(None)


async def test_replay_moves_only_selected_letters_and_strips_death_headers(lab, unique):
    dlq, target = unique("dlq"), unique("target")
    channel = await lab.channel()
    for queue in (dlq, target):
        await declare_run_queue(channel, queue)
    for body in (b"a", b"b", b"c"):
        await lab.publish(dlq, body, headers={"x-first-death-reason": "rejected", "x-attempts": 3})
    assert await replay(channel, dlq, target, select=lambda m: m.body == b"b") == 1
    [moved] = await take_all(channel, target)
    headers = moved.header.properties.headers
    assert moved.body == b"b" and "x-first-death-reason" not in headers and headers["x-attempts"] == 3
    assert [m.body for m in await take_all(channel, dlq)] == [b"a", b"c"]  # the rest kept their order
    for queue in (dlq, target):
        await channel.queue_delete(queue)
