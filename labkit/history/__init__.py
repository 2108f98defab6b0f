"""A history of every message's life and every HTTP call, checked against the guarantees a design claims.

Why: Jepsen's Maelstrom ends every run with a checker's verdict, the smallest failing case and a diagram
of the messages. This package does it for the course's real services on a real broker:

- :mod:`~labkit.history.events` -- :class:`Event` and :class:`History` (plain data, JSON lines);
- :mod:`~labkit.history.recorder` -- the switch (:func:`record`) and the hooks labkit's publishers,
  consumers and HTTP calls go through on the client side (so it works the same on RabbitMQ);
- :mod:`~labkit.history.checker` -- the properties (at-most/at-least/effectively once, no confirmed
  loss, per-key order, processed within T, sagas complete), a verdict per property with counts and the
  smallest counterexample;
- :mod:`~labkit.history.diagram` -- the space-time diagram with its text alternative;
- :mod:`~labkit.history.bundle` -- a run saved as a directory (history, verdicts, diagram) and loaded.

    from labkit import history
    with history.record() as h:
        ...                                            # the experiment
    report = history.check(h, history.EffectivelyOnce(effect="charge"))
    history.diagram(report["effectively-once"].counterexample)
"""

from labkit.history.bundle import load, save
from labkit.history.checker import (GUARANTEES, AtLeastOnce, AtMostOnce, EffectivelyOnce, NoConfirmedLoss,
                                    PerKeyOrder, ProcessedWithin, Property, Report, SagasComplete, Verdict, check,
                                    guarantee)
from labkit.history.diagram import SpaceTime, diagram
from labkit.history.events import KINDS, Event, History
from labkit.history.recorder import effect, record, saga, start, stop

__all__ = ["KINDS", "Event", "History", "record", "start", "stop", "effect", "saga", "Property", "Verdict",
           "Report", "AtMostOnce", "AtLeastOnce", "EffectivelyOnce", "NoConfirmedLoss", "PerKeyOrder",
           "ProcessedWithin", "SagasComplete", "GUARANTEES", "guarantee", "check", "SpaceTime", "diagram",
           "save", "load"]
