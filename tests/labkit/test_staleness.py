"""labkit.staleness: the staleness figure over M/M/1, and read strategies raced on a real shop."""

import pytest

from labkit.metrics import Record, Recording
from labkit.staleness import add_read_markers, compare_strategies, staleness_figure


def _run(lam, mu, windows):
    records = [Record(float(k), float(k), k + w, True, None, {}) for k, w in enumerate(windows)]
    return {"staleness": Recording(records), "arrival_rate": lam, "service_rate": mu}


def test_each_steady_run_gets_its_m_m_1_curve_and_an_overloaded_one_does_not():
    fig = staleness_figure({"light": _run(5, 40, [0.01, 0.03]), "overloaded": _run(50, 40, [0.2, 0.5])}, "t")
    names = [trace.name for trace in fig.data]
    assert "light: M/M/1" in names and "overloaded: M/M/1" not in names
    curve = next(trace for trace in fig.data if trace.name == "light: M/M/1")
    assert curve.y[0] == pytest.approx(0.0) and 0 < curve.y[-1] < 1 and max(curve.x) == pytest.approx(30.0)
    add_read_markers(fig, [0.0, 0.1], [0.2, 1.0])
    assert fig.data[-1].x == (0.0, 100.0) and fig.data[-1].y == (0.2, 1.0)
    with pytest.raises(ValueError, match="same length"):
        add_read_markers(fig, [0.0], [])


async def test_strategies_race_on_one_shop_and_read_your_writes_is_never_stale(lab):
    async def naive(shop, customer):
        order = await shop.place(customer)
        return order, await shop.orders_of(customer), 2

    async def read_your_writes(shop, customer):
        order = await shop.place(customer)
        return order, await shop.orders_of(customer, side="write"), 2

    fixes = await compare_strategies(
        lab, {"naive": naive, "ryw": read_your_writes}, work_time=0.02, rate=20, duration=0.5, progress=False
    )
    assert set(fixes) == {"naive", "ryw"} and len(fixes["naive"]) + len(fixes["ryw"]) >= 5
    assert not any(r.info["stale"] for r in fixes["ryw"])
    assert all(r.info["requests"] == 2 for r in fixes["naive"])
    with pytest.raises(ValueError, match="strategies"):
        await compare_strategies(lab, {}, work_time=0.02, rate=20, duration=0.5)
