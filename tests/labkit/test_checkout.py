"""labkit.checkout: both checkout designs, the spine and the saga, on real sockets and the lab's broker."""

import asyncio

import pytest

from labkit import load
from labkit.checkout import EDGE, SPINE, STEPS, Checkout, critical_path, split
from labkit.lab import HTTPStatusError
from labkit.lifecycle import wait_until

FAST = {step: 0.002 for step in STEPS}


async def test_hybrid_answers_after_the_edge_and_the_spine_finishes_later_on_one_trace(lab):
    checkout = await lab.start(Checkout(service_times={**FAST, "email": 0.3}))
    answer = await lab.call(checkout.hybrid, body=b"o1")
    assert answer["order"] == "o1"
    assert all(checkout.done(step, "o1") for step in EDGE)
    assert not checkout.done("email", "o1")  # the customer did not wait for the 300 ms email
    await checkout.wait_settled(["o1"], timeout=10)
    assert checkout.settled("o1") and checkout.log.state("o1") == "fulfilled"
    spans = lab.tracer.trace(answer["correlation_id"])
    served = {s.name.rsplit("-", 1)[-1] for s in spans if s.kind == "server"}
    assert set(STEPS) <= served  # one correlation id through every HTTP hop ...
    assert {s.name for s in spans if s.kind == "consume"} == {f"{step} worker" for step in SPINE}  # ... and AMQP
    path = critical_path(spans)
    assert path["spine"] > 0.25 > path["edge"]  # the email's 300 ms happened after the answer
    assert path["hops"] <= path["edge"] and 0 < path["hop_cost"] < path["hops"]


async def test_all_sync_waits_for_every_step_and_fails_when_one_is_down(lab):
    checkout = await lab.start(Checkout(service_times={**FAST, "email": 0.3}))
    answer = await lab.call(checkout.all_sync, body=b"o1")
    assert all(checkout.done(step, "o1") for step in STEPS)
    path = critical_path(lab.tracer.trace(answer["correlation_id"]))
    assert path["edge"] > 0.3 and path["spine"] < path["edge"]
    checkout.links["email"].down()
    with pytest.raises(HTTPStatusError):
        await lab.call(checkout.all_sync, body=b"o2")
    assert checkout.done("payment", "o2") and not checkout.done("email", "o2")  # charged, then failed


async def test_spine_waits_out_an_outage_and_sends_every_email_after_recovery(lab):
    checkout = await lab.start(Checkout(service_times=FAST))
    checkout.links["email"].down()
    orders = [f"o{i}" for i in range(10)]
    await asyncio.gather(*(lab.call(checkout.hybrid, body=o.encode()) for o in orders))
    # the other steps are not held up (waited for: a busy machine takes longer than any fixed pause) ...
    await wait_until(lambda: all(checkout.done("analytics", o) for o in orders), timeout=10, what="analytics")
    assert not any(checkout.done("email", o) for o in orders)  # ... while no email gets through the outage
    checkout.links["email"].clear()
    await checkout.wait_settled(orders, timeout=10)
    assert all(checkout.effects["email"][(o, "do")] == 1 for o in orders)


async def test_every_failed_fulfillment_is_compensated_once(lab):
    checkout = await lab.start(Checkout(service_times=FAST))
    checkout.services["fulfillment"].configure(failure_rate=0.5)
    run = await load.open_loop(
        lambda i: lab.call(checkout.hybrid, body=f"o{i}".encode()),
        rate=100,
        max_requests=30,
        duration=2,
        progress=False,
    )
    orders = [r.info["order"] for r in run if r.ok]
    assert len(orders) == 30
    await checkout.wait_settled(orders, timeout=15)
    log = checkout.log
    failed = [o for o in orders if log.state(o) == "compensated"]
    assert 0 < len(failed) < 30 and log.count("fulfilled") == 30 - len(failed)
    assert log.problems(orders) == {
        "not compensated": [],
        "undone although fulfilled": [],
        "unfinished": [],
        "violations": [],
    }
    for o in orders:
        undone = o in failed
        assert checkout.effects["payment"][(o, "refund")] == undone
        assert checkout.effects["inventory"][(o, "release")] == undone


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="service_times keys must be steps"):
        Checkout(None, service_times={"shipping": 0.1})
    with pytest.raises(ValueError, match=r"service_times\['email'\] must be >= 0"):
        Checkout(None, service_times={"email": -1})
    with pytest.raises(ValueError, match="links must name steps"):
        Checkout(None, links=("shipping",))
    with pytest.raises(ValueError, match="edge must name steps"):
        Checkout(edge=("validate", "shipping"))
    with pytest.raises(ValueError, match="edge must name each step once"):
        Checkout(edge=("save", "save"))
    with pytest.raises(ValueError, match="retry_cap must be >= retry_delay"):
        Checkout(None, retry_delay=0.5, retry_cap=0.1)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Checkout(None, timeout=0)
    with pytest.raises(ValueError, match="spans must contain"):
        critical_path([])
    with pytest.raises(ValueError, match="step must be one of"):
        Checkout(None).done("shipping", "o1")


def test_split_keeps_the_story_order_and_the_default_is_edge_and_spine():
    assert split(EDGE) == (EDGE, SPINE)
    assert split(("payment", "validate")) == (
        ("validate", "payment"),
        tuple(s for s in STEPS if s not in ("validate", "payment")),
    )


async def test_another_split_takes_payment_off_the_customers_wait(lab):
    slow_payment = {**FAST, "payment": 0.3}
    checkout = await lab.start(Checkout(edge=("validate", "inventory", "save"), service_times=slow_payment))
    assert "payment" in checkout.spine and "payment" in checkout.spine_workers
    answer = await lab.call(checkout.hybrid, body=b"o1")
    assert not checkout.done("payment", "o1")  # answered before the 300 ms charge
    await checkout.wait_settled(["o1"], timeout=10)
    assert checkout.done("payment", "o1") and checkout.log.state("o1") == "fulfilled"
    consumed = {s.name for s in lab.tracer.trace(answer["correlation_id"]) if s.kind == "consume"}
    assert "payment worker" in consumed
    await lab.remove(checkout)
    assert not checkout.running and not lab.services


async def test_wait_settled_waits_for_the_trace_not_only_the_side_effects(lab):
    # The email worker's side effect happens in the email service, but its consume span ends only after
    # the worker gets the answer and acks. Stretch that gap: a reader after wait_settled must still see it.
    checkout = await lab.start(Checkout(service_times=FAST))
    worker = checkout.spine_workers["email"]
    sent = worker.handler

    async def slow_after_the_effect(message):
        await sent(message)
        await asyncio.sleep(0.3)

    worker.handler = slow_after_the_effect
    answer = await lab.call(checkout.hybrid, body=b"o1")
    await checkout.wait_settled(["o1"], timeout=10)
    spans = lab.tracer.trace(answer["correlation_id"])
    assert "email worker" in {s.name for s in spans if s.kind == "consume"}
    assert lab.tracer.open_spans(answer["correlation_id"]) == 0


async def test_wait_settled_names_what_is_pending(lab):
    checkout = await lab.start(Checkout(service_times=FAST))
    with pytest.raises(TimeoutError, match=r"1 orders to settle \(first: \['never-placed'\]\)"):
        await checkout.wait_settled(["never-placed"], timeout=0.1)
