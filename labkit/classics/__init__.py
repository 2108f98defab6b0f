"""The classics, reproduced (chapter 11): four published results measured live, simulated and computed.

Why: the course cites Dean and Barroso's tail at scale, Brooker's backoff and jitter, the SRE book's retry
budgets and Little's law for messages in flight. Each module here reproduces one of them three ways from
one scenario object: a live run against the lab's real services or broker, a discrete-event simulation
(SimPy) fed the same parameters (and the hop times the calibration measured), and the closed form.

- :mod:`labkit.classics.calibrate` -- timer slack and per-hop cost of this machine, and the tolerance
  they imply for a quantity measured on a given time scale;
- :mod:`labkit.classics.tail` -- fan-out tail 1 - (1 - p)^N and hedged requests;
- :mod:`labkit.classics.brooker` -- Brooker's published backoff simulator (Apache-2.0), ported to Python 3;
- :mod:`labkit.classics.backoff` -- optimistic-concurrency writers with no jitter, full, equal and
  decorrelated jitter, simulated and live;
- :mod:`labkit.classics.budgets` -- retries (3 attempts -> 3x), a 10 % retry budget (-> 1.1x) and the
  4^3 = 64 retry storm of three retrying layers;
- :mod:`labkit.classics.inflight` -- throughput against messages in flight (prefetch) and Little's law.

Why SimPy and not ciw: only one of the four (the in-flight plateau) is a queueing network; the others are
processes that race (hedges), wait on each other (fan-out) or decide from shared state (optimistic writes,
retry budgets). SimPy's generator processes express all four in the same shape as the live asyncio code.

``full_mode()`` is true when the environment variable ``LABKIT_CLASSICS_FULL`` is set (to anything but
"", "0" or "false"): the chapter then runs its larger sweeps (for the built book).
"""

import os

__all__ = ["FULL_ENV", "full_mode"]

#: Environment variable that switches the chapter to its larger sweeps.
FULL_ENV = "LABKIT_CLASSICS_FULL"


def full_mode() -> bool:
    """Whether the larger sweeps were asked for (``LABKIT_CLASSICS_FULL=1``)."""
    return os.environ.get(FULL_ENV, "").strip().lower() not in ("", "0", "false", "no")
