"""Seeded random draws for the lab's parts: one independent, reproducible generator per named part, and
work times that are fixed or exponential with a given mean.

Why: a run must be repeatable (the same seed, the same service times, the same failures), and two parts
must not share a generator, or adding a part would change every other part's draws.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

from labkit._validate import integer, non_negative, one_of

__all__ = ["DISTRIBUTIONS", "rng_for", "sampler"]

DISTRIBUTIONS = ("fixed", "exponential")


def rng_for(seed: int, name: str) -> random.Random:
    """A random generator for one named component, stable across runs and independent of the others."""
    return random.Random((integer("seed", seed, 0) << 32) ^ zlib.crc32(name.encode()))


def sampler(mean: float, distribution: str, rng: random.Random, name: str = "service_time") -> Callable[[], float]:
    """A function returning one work time (seconds): ``mean`` exactly, or exponential with that mean.
    ``name`` is the argument named in the error if ``mean`` is invalid."""
    non_negative(name, mean)
    one_of("distribution", distribution, DISTRIBUTIONS)
    if distribution == "exponential" and mean > 0:
        rate = 1.0 / mean
        return lambda: rng.expovariate(rate)
    return lambda: mean
