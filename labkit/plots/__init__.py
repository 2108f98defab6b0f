"""Figure builders in one house style: every chapter's plots look alike and read alike.

Why: a reader compares figures across chapters (sync vs async, before vs after a fault), so colours,
units and layout must mean the same thing everywhere. All builders return a plain ``plotly`` ``go.Figure``
(no network: importing this package activates the offline renderer of :mod:`labkit.render`), use the
Okabe-Ito palette (distinguishable with every common colour-vision deficiency), put units in every axis
title, show time in seconds since the experiment's start and latency in milliseconds.

Inputs are what the rest of the kit produces: latencies in seconds, a :class:`labkit.metrics.Recording`
or a list of records, ``(t, y)`` pairs of lists, a :class:`~labkit.metrics.QueueDepthSampler`, fault
bands from ``FaultProxy.bands(t0)``, spans from the lab's tracer.

Chapters call ``from labkit import plots`` and ``plots.timeline(...)``: the names exported here are that
public API, gathered from the modules that build each kind of figure:
:mod:`~labkit.plots.style` (palette, template, empty figure, fault bands), :mod:`~labkit.plots.timelines`
(over the experiment's time axis), :mod:`~labkit.plots.distributions` (latency CDF and percentiles),
:mod:`~labkit.plots.predictions` (measurements against theory) and :mod:`~labkit.plots.traces` (one
request's spans).
"""

from labkit.plots.distributions import latency_cdf, percentiles
from labkit.plots.predictions import latency_vs, measured_vs_predicted
from labkit.plots.style import COLORS, OKABE_ITO, TEMPLATE, add_fault_bands, figure
from labkit.plots.timelines import attempts, queue_depth, success_rate, timeline
from labkit.plots.traces import trace_waterfall

__all__ = [
    "OKABE_ITO",
    "COLORS",
    "TEMPLATE",
    "figure",
    "add_fault_bands",
    "timeline",
    "latency_vs",
    "latency_cdf",
    "percentiles",
    "queue_depth",
    "success_rate",
    "measured_vs_predicted",
    "trace_waterfall",
    "attempts",
]
