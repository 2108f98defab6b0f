"""labkit.saga.OrderLog: the state machine of an order in the checkout saga (pure, no I/O)."""

import pytest

from labkit.saga import OrderLog


def test_a_fulfilled_order_needs_no_compensation():
    log = OrderLog()
    log.record("o1", "placed", at=1.0)
    log.record("o1", "fulfilled", at=1.5)
    assert log.state("o1") == "fulfilled"
    assert log.timeline("o1") == [(0.0, "placed"), (0.5, "fulfilled")]
    assert log.problems() == {
        "not compensated": [],
        "undone although fulfilled": [],
        "unfinished": [],
        "violations": [],
    }


def test_compensated_only_when_every_compensation_is_done_in_either_order():
    log = OrderLog()
    for order, last_two in (("a", ("refunded", "stock released")), ("b", ("stock released", "refunded"))):
        log.record(order, "placed")
        log.record(order, "fulfillment failed")
        log.record(order, last_two[0])
        assert log.state(order) == last_two[0]
        assert log.problems()["not compensated"][-1] == order
        log.record(order, last_two[1])
        assert log.state(order) == "compensated"
    assert log.count("compensated") == 2 and log.count("fulfilled") == 0
    assert log.problems()["not compensated"] == []


@pytest.mark.parametrize(
    "history, bad",
    [
        ((), "fulfilled"),  # never placed
        (("placed",), "refunded"),  # refund without a failure
        (("placed", "fulfilled"), "fulfillment failed"),  # cannot both succeed and fail
        (("placed", "fulfillment failed", "refunded"), "refunded"),  # refunded twice
        (("placed",), "placed"),  # placed twice
    ],
)
def test_transitions_the_saga_does_not_allow_are_kept_as_violations(history, bad):
    log = OrderLog()
    for state in history:
        log.record("o", state)
    log.record("o", bad)
    assert log.violations == [("o", bad, tuple(history))]
    assert log.state("o") == (history[-1] if history else None)


def test_unfinished_orders_are_reported_and_arguments_are_validated():
    log = OrderLog()
    log.record("o", "placed")
    assert log.problems(["o"])["unfinished"] == ["o"]
    with pytest.raises(ValueError, match="state must be one of"):
        log.record("o", "shipped")
    with pytest.raises(ValueError, match="order must be a non-empty"):
        log.record("", "placed")
    with pytest.raises(ValueError, match="state must be one of"):
        log.count("nope")
