"""labkit.delivery: chapter 06's experiments (crashes and duplicates, ordering) on a real broker."""

import pytest

from labkit.delivery import run_ordering, run_payments, run_poison, run_publisher


async def test_each_crash_is_one_double_charge_unless_the_consumer_dedupes(lab):
    naive = await run_payments(lab, n=20, crash_every=7, progress=False)
    assert naive["lost"] == 0 and naive["crashes"] >= 2
    assert naive["duplicates"] == naive["crashes"] and naive["charges"] == 20 + naive["crashes"]
    deduped = await run_payments(lab, n=20, crash_every=7, dedupe=True, progress=False)
    assert deduped["lost"] == 0 and deduped["duplicates"] == 0 and deduped["charges"] == 20
    assert deduped["billed"] == 20 * 20.0


async def test_one_consumer_and_partitions_keep_each_customers_order(lab):
    single = await run_ordering(lab, "one consumer", 24, progress=False)
    assert single["global"] == 0 and single["per customer"] == 0
    parts = await run_ordering(lab, "partitioned", 24, progress=False)
    assert parts["per customer"] == 0
    assert sorted(n for _, _, n in parts["applied"]) == list(range(24))


async def test_arguments_are_checked_before_anything_runs(lab):
    with pytest.raises(ValueError, match="setup must be one of"):
        await run_ordering(lab, "round robin")
    with pytest.raises(ValueError, match="crash_every must be an integer >= 1"):
        await run_payments(lab, crash_every=0)


async def test_the_poison_message_is_tried_max_attempts_times_and_parked_the_good_ones_once(lab):
    poison = await run_poison(lab, delay_ms=20, max_attempts=3, good=4)
    topo, tried = poison["topology"], poison["tried"]
    try:
        assert len(tried["order-2"]) == 3 and all(len(tried[f"order-{i}"]) == 1 for i in (0, 1, 3, 4))
        assert tried["order-2"][-1] - tried["order-2"][0] >= 2 * 0.020 * 0.98
        assert await lab.queue_depth(topo.dlq) == 1
    finally:
        await topo.delete(poison["channel"])


async def test_confirms_lose_nothing_across_connection_resets(lab):
    confirmed = await run_publisher(lab, True, messages=30, resets_at=(10, 20), progress=False)
    assert confirmed["errors seen"] >= 2 and confirmed["lost"] == 0
    assert confirmed["received"] >= 30 and confirmed["sent (as far as the app knows)"] == 30
