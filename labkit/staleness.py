"""How stale a read model is: the staleness window against M/M/1, and the fixes compared for the writer.

Why a module of its own: chapter 05 measures how long an order takes to show up in the read model and
compares that window with the M/M/1 queue a projection is, then lets four read strategies race under
the same load. What a learner changes and checks stays in the chapter; drawing the measured CDFs over
their theory and running the strategies side by side is the instrument, and lives here.

    fig = staleness_figure({"16 orders/s": run}, "How long until an order is visible")
    fixes = await compare_strategies(lab, {"naive": naive, ...}, work_time=0.025, rate=16, duration=2.5)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from labkit import load, plots, theory
from labkit._validate import positive
from labkit.metrics import Recording
from labkit.projection import Shop

if TYPE_CHECKING:
    from labkit.lab import Lab

__all__ = ["add_read_markers", "compare_strategies", "staleness_figure"]

#: A read strategy: given the shop and a customer, place an order and read the history back;
#: returns ``(order, the order ids seen, HTTP requests made)``.
Strategy = Callable[[Shop, str], Awaitable[tuple[dict[str, Any], Sequence[str], int]]]


def staleness_figure(runs: Mapping[str, Mapping[str, Any]], title: str) -> go.Figure:
    """Measured CDFs of the staleness window with their M/M/1 curves (dashed, same colour).

    ``runs``: ``{name: result}``, each result with ``"staleness"`` (a Recording), ``"arrival_rate"`` and
    ``"service_rate"`` (the measured λ and μ). A run with λ ≥ μ has no steady state and gets no curve.
    """
    marks = (99,) if len(runs) == 1 else ()  # several runs: their p99 labels would overlap
    fig = plots.latency_cdf({name: r["staleness"] for name, r in runs.items()}, title=title, marks=marks)
    fig.update_layout(margin_t=60 + 25 * len(runs), height=420 + 25 * len(runs))  # room for the legend
    fig.update_xaxes(title_text="time after the order was stored (ms)")
    fig.update_yaxes(title_text="fraction of orders visible")
    for i, (name, r) in enumerate(runs.items()):
        lam, mu = r["arrival_rate"], r["service_rate"]
        if lam >= mu:
            continue  # no steady state: the queue only grows
        top = max(r["staleness"].latencies())
        ts = [top * k / 60 for k in range(61)]
        line = dict(color=plots.COLORS[i % len(plots.COLORS)], dash="dash", width=1.5)
        fig.add_trace(
            go.Scatter(
                x=[t * 1e3 for t in ts],
                y=[theory.mm1_response_cdf(t, lam, mu) for t in ts],
                name=f"{name}: M/M/1",
                mode="lines",
                line=line,
            )
        )
    return fig


def add_read_markers(fig: go.Figure, delays: Sequence[float], fresh: Sequence[float]) -> go.Figure:
    """Add the reads made at fixed delays (s) after the write, as the fraction that saw the order."""
    if len(delays) != len(fresh):
        raise ValueError(f"delays and fresh must have the same length, got {len(delays)} and {len(fresh)}")
    fig.add_trace(
        go.Scatter(
            x=[d * 1e3 for d in delays],
            y=list(fresh),
            mode="markers",
            marker=dict(size=11, symbol="diamond", color=plots.OKABE_ITO["black"]),
            name="reads at a fixed delay that saw the order",
        )
    )
    return fig


async def compare_strategies(
    lab: Lab,
    strategies: Mapping[str, Strategy],
    *,
    work_time: float,
    rate: float,
    duration: float,
    seed: int = 0,
    customers: int = 20,
    progress: bool = True,
) -> dict[str, Recording]:
    """One fresh shop; users at ``rate``/s for ``duration`` s, user i taking the strategies in turn.

    Returns ``{strategy: Recording}``; each record's ``info`` says whether the writer's own order was
    ``"stale"`` (missing from what it read back) and how many HTTP ``"requests"`` the strategy made.
    Fails loudly if any user failed.
    """
    if not strategies:
        raise ValueError("strategies must name at least one read strategy")
    positive("rate", rate)
    positive("duration", duration)
    shop = await lab.start(Shop(work_time=work_time))
    names = list(strategies)

    async def user(i: int) -> dict[str, Any]:
        name = names[i % len(names)]
        order, seen, requests = await strategies[name](shop, f"customer-{i % customers}")
        return {"strategy": name, "stale": order["id"] not in seen, "requests": requests}

    try:
        recording = await load.open_loop(
            user, rate=rate, duration=duration, seed=seed, t0=lab.mark(), progress=progress
        )
    finally:
        await lab.remove(shop)
    if recording.success_rate() != 1.0:
        raise AssertionError(f"users failed: {recording.errors()}")
    return {name: recording.group_by("strategy")[name] for name in names}
