"""Argument checks shared by every public labkit function.

Why: a learner who types ``rate=-5`` in a notebook should get one clear sentence naming the argument and
the allowed range, not a hang, a ZeroDivisionError deep in asyncio, or a silently empty plot. Each helper
returns the value unchanged (so it can be used inline: ``self.rate = positive("rate", rate)``) or raises
``ValueError`` whose message reads ``"<name> must be <rule>, got <value!r>"``.

Booleans are rejected where a number is expected (``True`` is an ``int`` in Python, but ``rate=True`` is
always a mistake), and so are NaN and, unless ``allow_inf=True``, infinities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any, TypeVar

__all__ = ["positive", "non_negative", "probability", "between", "port", "one_of", "integer", "amqp_url", "queue_name"]

T = TypeVar("T")


def _fail(name: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {rule}, got {value!r}")


def _number(name: str, value: Any, rule: str, allow_inf: bool) -> float:
    """Return ``value`` if it is a real, non-NaN number (finite unless ``allow_inf``), else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _fail(name, f"a number {rule}", value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise _fail(name, f"a finite number {rule}", value)
    return float(value)


def positive(name: str, value: T, *, allow_inf: bool = False) -> T:
    """Check ``value > 0`` (rates, durations, service times, intervals)."""
    if not _number(name, value, "> 0", allow_inf) > 0:
        raise _fail(name, "> 0", value)
    return value


def non_negative(name: str, value: T, *, allow_inf: bool = False) -> T:
    """Check ``value >= 0`` (delays, jitter, think times, start offsets)."""
    if not _number(name, value, ">= 0", allow_inf) >= 0:
        raise _fail(name, ">= 0", value)
    return value


def between(name: str, value: T, lo: float, hi: float) -> T:
    """Check ``lo <= value <= hi`` for a real number (percentiles in [0, 100], fractions, offsets)."""
    rule = f"in [{lo}, {hi}]"
    if not lo <= _number(name, value, rule, False) <= hi:
        raise _fail(name, rule, value)
    return value


def probability(name: str, value: T) -> T:
    """Check ``0 <= value <= 1`` (failure rates, toxic probabilities, availabilities)."""
    return between(name, value, 0, 1)


def integer(name: str, value: T, lo: int | None = None, hi: int | None = None) -> T:
    """Check ``value`` is an int (not a bool) with ``lo <= value <= hi`` (either bound may be None)."""
    if lo is not None and hi is not None:
        rule = f"an integer in [{lo}, {hi}]"
    elif lo is not None:
        rule = f"an integer >= {lo}"
    elif hi is not None:
        rule = f"an integer <= {hi}"
    else:
        rule = "an integer"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _fail(name, rule, value)
    number = int(value)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise _fail(name, rule, value)
    return value


def port(name: str, value: T, *, allow_zero: bool = False) -> T:
    """Check a TCP port: 1-65535, or 0 too when ``allow_zero`` (0 asks the OS for an ephemeral port)."""
    return integer(name, value, 0 if allow_zero else 1, 65535)


def one_of(name: str, value: T, allowed: Iterable[Any]) -> T:
    """Check ``value`` is one of ``allowed`` (kinds, directions, arrival processes)."""
    options = list(allowed)
    if value not in options:
        shown = ", ".join(repr(o) for o in options)
        raise _fail(name, f"one of {shown}", value)
    return value


def amqp_url(name: str, value: T) -> T:
    """Check an AMQP URL: a string starting with ``amqp://`` or ``amqps://``."""
    if not isinstance(value, str) or not value.startswith(("amqp://", "amqps://")):
        raise ValueError(f"{name} must start with amqp:// or amqps://, got {value!r}")
    return value


def queue_name(name: str, value: T) -> T:
    """Check a queue (or exchange) name: a non-empty string of at most 255 characters (AMQP's shortstr)."""
    if not isinstance(value, str) or not value or len(value) > 255:
        raise _fail(name, "a non-empty queue name of at most 255 characters", value)
    return value
