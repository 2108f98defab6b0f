"""labkit.checkout: both checkout designs, the spine and the saga, on real sockets and the lab's broker."""

import asyncio

import pytest

from labkit import load
from labkit.checkout import EDGE, SPINE, STEPS, Checkout, critical_path
from labkit.faults import Down
from labkit.lab import HTTPStatusError

FAST = {step: 0.002 for step in STEPS}


async def test_hybrid_answers_after_the_edge_and_the_spine_finishes_later_on_one_trace(lab):
    checkout = await Checkout(lab, service_times={**FAST, "email": 0.3}).start()
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
    checkout = await Checkout(lab, service_times={**FAST, "email": 0.3}).start()
    answer = await lab.call(checkout.all_sync, body=b"o1")
    assert all(checkout.done(step, "o1") for step in STEPS)
    path = critical_path(lab.tracer.trace(answer["correlation_id"]))
    assert path["edge"] > 0.3 and path["spine"] < path["edge"]
    checkout.links["email"].set(Down())
    with pytest.raises(HTTPStatusError):
        await lab.call(checkout.all_sync, body=b"o2")
    assert checkout.done("payment", "o2") and not checkout.done("email", "o2")  # charged, then failed


async def test_spine_waits_out_an_outage_and_sends_every_email_after_recovery(lab):
    checkout = await Checkout(lab, service_times=FAST).start()
    checkout.links["email"].set(Down())
    orders = [f"o{i}" for i in range(10)]
    await asyncio.gather(*(lab.call(checkout.hybrid, body=o.encode()) for o in orders))
    await asyncio.sleep(0.3)
    assert not any(checkout.done("email", o) for o in orders)
    assert all(checkout.done("analytics", o) for o in orders)  # the other steps are not held up
    checkout.links["email"].clear()
    await checkout.wait_settled(orders, timeout=10)
    assert all(checkout.effects["email"][(o, "do")] == 1 for o in orders)


async def test_every_failed_fulfillment_is_compensated_once(lab):
    checkout = await Checkout(lab, service_times=FAST).start()
    checkout.services["fulfillment"].configure(failure_rate=0.5)
    run = await load.open_loop(lambda i: lab.call(checkout.hybrid, body=f"o{i}".encode()), rate=100,
                               max_requests=30, duration=2, progress=False)
    orders = [r.info["order"] for r in run if r.ok]
    assert len(orders) == 30
    await checkout.wait_settled(orders, timeout=15)
    log = checkout.log
    failed = [o for o in orders if log.state(o) == "compensated"]
    assert 0 < len(failed) < 30 and log.count("fulfilled") == 30 - len(failed)
    assert log.problems(orders) == {"not compensated": [], "undone although fulfilled": [], "unfinished": [],
                                    "violations": []}
    for o in orders:
        undone = o in failed
        assert checkout.effects["payment"][(o, "refund")] == undone
        assert checkout.effects["inventory"][(o, "release")] == undone


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="service_times keys must be steps"):
        Checkout(None, service_times={"shipping": 0.1})
    with pytest.raises(ValueError, match=r"service_times\['email'\] must be >= 0"):
        Checkout(None, service_times={"email": -1})
    with pytest.raises(ValueError, match="links must name spine steps"):
        Checkout(None, links=("payment",))
    with pytest.raises(ValueError, match="retry_cap must be >= retry_delay"):
        Checkout(None, retry_delay=0.5, retry_cap=0.1)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Checkout(None, timeout=0)
    with pytest.raises(ValueError, match="spans must contain"):
        critical_path([])
    with pytest.raises(ValueError, match="step must be one of"):
        Checkout(None).done("shipping", "o1")
