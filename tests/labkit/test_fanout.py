"""labkit.fanout: the fan-out topology on the lab's broker, the hiccup handler on real services, lag."""

import asyncio

import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from labkit.fanout import Fanout, Hiccup, OrderProducer, lag_figure, lag_timeline, new_order, tail_figure
from labkit.queues import declare_run_queue
from labkit.theory import fluid_backlog


async def test_one_publish_reaches_every_bound_queue_and_stop_deletes_them(lab, unique):
    exchange, queues = unique("events"), [unique("a"), unique("b"), unique("c")]
    fan = lab.own(await Fanout(await lab.channel(), exchange, queues[:2]).start())
    await lab.publish("order.placed", b"1", exchange=exchange)
    await fan.add(queues[2])  # a late queue gets only what comes after it was bound
    await lab.publish("order.placed", b"2", exchange=exchange)
    assert [await lab.queue_depth(q) for q in queues] == [2, 2, 1]
    await lab.remove(fan)
    channel = await lab.channel()
    with pytest.raises(ChannelNotFoundEntity):  # deleted: a passive declare fails with 404
        await channel.queue_declare(queues[0], passive=True)


async def test_topic_fanout_routes_by_pattern_and_binds_a_queue_declared_elsewhere(lab, unique):
    exchange, queue, everything = unique("events"), unique("orders"), unique("all")
    channel = await lab.channel()
    fan = lab.own(await Fanout(channel, exchange, [queue], exchange_type="topic", routing_key="order.*").start())
    await declare_run_queue(channel, everything, arguments={"x-max-length": 10})
    await fan.add(everything, declare=False, routing_key="#")
    await lab.publish("order.placed", exchange=exchange)
    await lab.publish("payment.failed", exchange=exchange)
    assert [await lab.queue_depth(q) for q in (queue, everything)] == [1, 2]
    await lab.remove(fan)
    with pytest.raises(ChannelNotFoundEntity):  # deleted with the fan-out although declared elsewhere
        await (await lab.channel()).queue_declare(everything, passive=True)


async def test_hiccup_slows_a_request_only_when_it_draws_one(http_lab):
    always = await http_lab.service("always", service_time=0, handler=Hiccup(1.0, 0.2))
    never = await http_lab.service("never", service_time=0, handler=Hiccup(0.0, 0.2))
    slow = await asyncio.gather(*(http_lab.call(always) for _ in range(3)))
    fast = await asyncio.gather(*(http_lab.call(never) for _ in range(3)))
    assert all(r["hiccup"] for r in slow) and not any(r["hiccup"] for r in fast)
    assert always.handler.slow == always.handler.calls == 3
    assert min(r.end - r.start for r in always.records) >= 0.2 > max(r.end - r.start for r in never.records) * 2


def test_hiccup_draws_are_seeded_and_near_p():
    async def draw(hiccup):
        return [(await hiccup(b""))["hiccup"] for _ in range(2000)]

    draws = [asyncio.run(draw(Hiccup(0.1, 0, seed=3))) for _ in range(2)]
    assert draws[0] == draws[1]
    hiccup = Hiccup(0.1, 0)
    hiccup.configure(p=1.0, delay=0.0)
    assert asyncio.run(hiccup(b""))["hiccup"] and hiccup.slow == 1
    assert 0.07 < sum(draws[0]) / 2000 < 0.13


def test_lag_timeline_counts_published_minus_done():
    t, lag = lag_timeline([10.0, 10.1, 10.2], [10.15, 10.3, 10.4], t0=10.0)
    assert t == pytest.approx([0.0, 0.1, 0.15, 0.2, 0.3, 0.4])
    assert lag == [1, 2, 1, 2, 1, 0]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Hiccup(1.5, 0.1), "p must be"),
        (lambda: Hiccup(0.1, -1), "delay must be"),
        (lambda: Hiccup(0.1, 1).configure(p=-0.1), "p must be"),
        (lambda: lag_timeline([1.0], [1.0, 2.0]), "done must not have more"),
        (lambda: Fanout(None, "", []), "exchange must be"),
        (lambda: Fanout(None, "x", [""]), "queue must be"),
        (lambda: Fanout(None, "x", exchange_type="headers"), "exchange_type"),
    ],
)
def test_arguments_are_validated(call, message):
    with pytest.raises(ValueError, match=message):
        call()


async def test_the_order_producer_publishes_each_order_once_in_order_and_remembers_when(lab, unique):
    exchange, queue = unique("shop"), unique("orders")
    fan = lab.own(await Fanout(await lab.channel(), exchange, [queue]).start())
    producer = OrderProducer(lab, exchange)
    await asyncio.gather(*(producer.place_order(i) for i in range(5)))
    assert sorted(producer.sent) == [f"order-{i:04d}" for i in range(5)] == sorted(producer.sent_wall)
    assert producer.orders[3] == new_order(3) and new_order(3)["customer"] == "customer-3"
    assert await lab.queue_depth(queue) == 5
    await lab.remove(fan)
    with pytest.raises(ValueError, match="exchange must be a non-empty exchange name"):
        OrderProducer(lab, "")


def test_the_figures_draw_measurements_over_theory():
    fluid = fluid_backlog([(0.0, 1.0, 20.0), (1.0, 5.0, 0.0)], 10.0)
    fig = lag_figure({"email": ([0.0, 1.0], [0, 10])}, fluid, joined_at=0.5)
    assert [trace.name for trace in fig.data] == ["email", "email: fluid model"]
    assert max(fig.data[1].y) == pytest.approx(fluid.peak, rel=0.05)
    tail = tail_figure(0.02, {1: 0.0, 10: 0.2}, {1: 0.0, 10: 0.0}, {1: 0.03, 10: 0.1})
    assert [trace.name for trace in tail.data] == ["theory 1 − (1 − 0.02)ᴺ", "sync fan-out", "async fan-out (publish)"]
    assert len(tail.data[0].x) == 10 and tail.data[1].error_y.array == (3.0, 10.0)
