"""A history of every message's life and every HTTP call, checked against the guarantees a design claims.

Why: Jepsen's Maelstrom ends every run with a checker's verdict, the smallest failing case and a diagram
of the messages. This package does it for the course's real services on a real broker:

- :mod:`~labkit.history.events` -- :class:`Event` and :class:`History` (plain data, JSON lines);
- :mod:`~labkit.history.recorder` -- the switch (:func:`record`) and the hooks labkit's publishers,
  consumers and HTTP calls go through on the client side (so it works the same on RabbitMQ);
- :mod:`~labkit.history.checker` -- the properties (at-most/at-least/effectively once, no confirmed
  loss, per-key order, processed within T, sagas complete), a verdict per property with counts and the
  smallest counterexample;
- :mod:`~labkit.history.spacetime` -- the space-time diagram with its text alternative;
- :mod:`~labkit.history.bundle` -- a run saved as a directory (history, verdicts, diagram) and loaded.

    from labkit import history
    with history.record() as h:
        ...                                            # the experiment
    report = history.check(h, history.EffectivelyOnce(effect="charge"))
    history.diagram(report["effectively-once"].counterexample)
"""

import importlib
from typing import Any

# Where each public name lives. Loaded on first use: labkit's publishers and consumers import the recorder
# (tiny) on every kernel start, and must not pull in plotly with it.
_HOME = {
    "load": "bundle",
    "save": "bundle",
    "GUARANTEES": "checker",
    "AtLeastOnce": "checker",
    "AtMostOnce": "checker",
    "EffectivelyOnce": "checker",
    "NoConfirmedLoss": "checker",
    "PerKeyOrder": "checker",
    "ProcessedWithin": "checker",
    "Property": "checker",
    "Report": "checker",
    "SagasComplete": "checker",
    "Verdict": "checker",
    "check": "checker",
    "guarantee": "checker",
    "SpaceTime": "spacetime",
    "diagram": "spacetime",
    "KINDS": "events",
    "Event": "events",
    "History": "events",
    "effect": "recorder",
    "record": "recorder",
    "saga": "recorder",
    "start": "recorder",
    "stop": "recorder",
}

__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"labkit.history.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit.history' has no attribute {name!r}")
