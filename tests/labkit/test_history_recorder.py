"""The recorder's hooks on real parts: consumers, publishers, the lab's HTTP calls, ledger and saga log.

Against the embedded broker and RabbitMQ in turn (``amqp_url``): the history is recorded on the client
side, so both brokers must give the same verdicts.
"""

from __future__ import annotations

from labkit import history as H
from labkit.consumers import Consumer, publish
from labkit.history import recorder
from labkit.idempotency import Ledger
from labkit.lab import Lab
from labkit.lifecycle import wait_until
from labkit.publisher import Publisher
from labkit.saga import OrderLog


async def crash_run(amqp_url: str, queue: str, dedupe: bool, n: int = 12) -> tuple[H.History, Ledger]:
    """n payments; the first consumer crashes after its 5th charge (before the ack); a second finishes."""
    ledger = Ledger()

    async def charge(message):
        ledger.charge(message.header.properties.message_id, 20, dedupe=dedupe)

    publisher = await Publisher(amqp_url, confirms=True).start()
    first = second = None
    try:
        with H.record() as h:
            first = await Consumer(
                amqp_url,
                queue,
                prefetch=4,
                work_time=0.0,
                handler=charge,
                crash_after=5,
                name="pay-0",
                arguments={"x-expires": 30_000},
            ).start()
            for i in range(n):
                await publisher.publish(queue, b"{}", message_id=f"order-{i}")
            await wait_until(lambda: first.crashed, timeout=10, what="the first consumer's crash")
            second = await Consumer(amqp_url, queue, declare=False, work_time=0.0, handler=charge, name="pay-1").start()
            await wait_until(lambda: first.processed + second.processed >= n, timeout=10, what="all acks")
    finally:
        for part in (first, second, publisher):
            if part is not None:
                await part.stop()
    return h, ledger


async def test_crash_before_ack_fails_effectively_once_with_two_deliveries_and_dedupe_passes(amqp_url, unique):
    naive, ledger = await crash_run(amqp_url, unique("hist-naive"), dedupe=False)
    props = [H.EffectivelyOnce("charge"), H.AtLeastOnce("charge"), H.NoConfirmedLoss()]
    report = H.check(naive, *props)
    verdict = report["effectively-once"]
    assert not verdict.held and verdict.violations == ledger.duplicates() == 1, str(report)
    kinds = [e.kind for e in verdict.counterexample]
    assert kinds.count("deliver") == 2 and kinds.count("effect") == 2 and "crash" in kinds, str(verdict)
    assert [e.attrs["redelivered"] for e in verdict.counterexample if e.kind == "deliver"] == [False, True]
    assert report["at-least-once"].held and report["no confirmed message lost"].held
    assert report["no confirmed message lost"].checked == 12  # every publish was confirmed by the broker
    deduped, ledger = await crash_run(amqp_url, unique("hist-dedupe"), dedupe=True)
    assert H.check(deduped, *props).passed and ledger.duplicates() == 0
    assert sum(not e.attrs["applied"] for e in deduped.of("effect")) == 1  # the redelivery, skipped


async def test_recording_off_records_nothing_and_on_records_publish_and_delivery(amqp_url, unique):
    queue = unique("hist-off")
    consumer = await Consumer(amqp_url, queue, work_time=0.0, name="c", arguments={"x-expires": 30_000}).start()
    publisher = await Publisher(amqp_url, confirms=False).start()
    try:
        assert recorder.active is None
        await publisher.publish(queue, b"a", message_id="off-1")
        with H.record() as h:
            await publisher.publish(queue, b"b", message_id="on-1")
            await wait_until(lambda: consumer.processed >= 2, timeout=10, what="two acks")
    finally:
        await publisher.stop()
        await consumer.stop()
    assert not h.where(message_id="off-1", kind="publish")  # published while the recorder was off
    on = h.where(message_id="on-1")
    assert [e.kind for e in on] == ["publish", "deliver", "ack"]  # no confirms asked, so none recorded
    assert on[0].key == queue and on[1].process == "c"


async def test_http_calls_and_handler_publishes_are_recorded_in_their_lanes(unique):
    async with Lab(seed=0) as lab:
        queue = unique("hist-http")
        await lab.declare_queue(queue)
        payment = await lab.service("payment", service_time=0.0)
        order = await lab.service("order", service_time=0.0, downstream=[payment])
        proxy = await lab.proxy(order, name="order-proxy")

        async def forward(message):
            await publish(await lab.channel(), queue + "-out", b"", message_id="forwarded")

        with H.record() as h:
            await lab.call(order, correlation_id="req-1")
            await lab.call(proxy, correlation_id="req-2")
            await lab.consumer(queue, declare=False, handler=forward, work_time=0.0, name="relay")
            await lab.publish(queue, b"x", message_id="in-1")
            await wait_until(lambda: any(e.message_id == "forwarded" and e.kind == "publish" for e in h), timeout=10)
        assert [
            (e.process, e.kind, e.attrs.get("target"), e.attrs.get("status")) for e in h.where(correlation_id="req-1")
        ] == [
            ("client", "request", "order", None),
            ("order", "request", "payment", None),
            ("order", "response", "payment", 200),
            ("client", "response", "order", 200),
        ]
        assert h.where(correlation_id="req-2")[0].attrs["target"] == "order-proxy"
        assert h.where(message_id="forwarded")[0].process == "relay"  # published from the handler's lane


def test_saga_log_records_moves_the_checker_judges():
    log = OrderLog()
    with H.record() as h:
        for order, states in {
            "o1": ["placed", "fulfilled"],
            "o2": ["placed", "fulfillment failed", "refunded", "stock released"],
            "o3": ["placed", "fulfillment failed", "refunded"],
        }.items():
            for state in states:
                log.record(order, state)
    verdict = H.check(h, H.SagasComplete())["every saga committed or compensated"]
    assert (verdict.checked, verdict.violations, verdict.subject) == (3, 1, "o3")
    assert "not compensated: inventory" in verdict.reason


async def test_capstone_reports_delivery_properties_through_the_checker(lab):
    from labkit.capstone import check_design

    async def notify_twice(workflow):
        return await lab.service(
            "upload-twice",
            downstream=[workflow.processor_url, workflow.notifier_url, workflow.notifier_url],
            timeout=2.0,
        )

    report = await check_design(lab, notify_twice, seed=1)
    assert report.t0 > 0 and len(report.fault_bands) == 3  # the timeline fields keep their places
    twice = report.verdicts["at-most-once"]
    assert not twice.held and not report.properties[-1].held
    notified = [e for e in twice.counterexample if e.kind == "effect" and e.attrs["name"] == "notified"]
    assert len(notified) == 2 and {e.correlation_id for e in notified} == {twice.subject}
    assert any(e.kind == "response" and e.attrs["status"] == 200 for e in twice.counterexample)


async def test_a_dead_lettered_delivery_says_why(amqp_url, unique):
    work, parked = unique("hist-work"), unique("hist-parked")
    catcher = await Consumer(amqp_url, parked, work_time=0.0, name="parked").start()
    worker = None
    try:
        with H.record() as h:
            worker = await Consumer(
                amqp_url,
                work,
                work_time=0.0,
                failure_rate=1.0,
                requeue_failed=False,
                name="work",
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": parked},
            ).start()
            publisher = await Publisher(amqp_url).start()
            await publisher.publish(work, b"x", message_id="poison")
            await publisher.stop()
            await wait_until(lambda: catcher.processed >= 1, timeout=10, what="the dead-lettered delivery")
    finally:
        for part in (worker, catcher):
            if part is not None:
                await part.stop()
    assert [
        (e.process, e.kind, e.attrs.get("dead_lettered"))
        for e in h.where(message_id="poison")
        if e.kind in ("deliver", "reject")
    ] == [("work", "deliver", None), ("work", "reject", None), ("parked", "deliver", "rejected")]
