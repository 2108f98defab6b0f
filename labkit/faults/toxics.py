"""Toxics: the faults a :class:`labkit.faults.FaultProxy` applies to the bytes of a link (Toxiproxy's model).

A toxic has a ``name``, a ``type`` (its class: latency, bandwidth, reset, blackhole), a
``direction`` (``upstream`` client -> server, ``downstream`` server -> client, or ``both``) and a
``toxicity`` (``probability``): the chance that it applies to a given connection, drawn once per toxic and
connection (that state lives with the connection, :class:`labkit.faults.link.Connection`).

A link that is down is not a toxic but a state of the proxy (REFUSING, see
:class:`labkit.faults.proxy.ProxyState` and ``FaultProxy.down()``): it acts on the listener, not on bytes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from labkit._validate import non_negative, one_of, positive
from labkit._validate import probability as check_probability
from labkit.metrics import sleep_until

if TYPE_CHECKING:
    from labkit.faults.link import Pipe

__all__ = ["DIRECTIONS", "Bandwidth", "Blackhole", "Latency", "Reset", "Toxic", "check_toxic"]

DIRECTIONS = ("upstream", "downstream", "both")


class Toxic:
    """A fault applied to the bytes of some connections in some direction(s) while active.

    Toxiproxy's fields: ``name`` (default: the type and direction, e.g. ``"latency_downstream"``),
    ``type``, ``direction`` and ``toxicity`` (the same number as ``probability``)."""

    default_direction = "both"

    def __init__(self, *, direction: str | None = None, probability: float = 1.0, name: str | None = None):
        self.direction = one_of("direction", direction or self.default_direction, DIRECTIONS)
        self.probability = check_probability("probability", probability)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name or f"{self.type}_{self.direction}"

    @property
    def type(self) -> str:
        """The toxic's kind, as Toxiproxy spells it: ``latency``, ``bandwidth``, ``reset``, ..."""
        return type(self).__name__.lower()

    @property
    def toxicity(self) -> float:
        """Toxiproxy's name for ``probability``: the chance it applies to a connection."""
        return self.probability

    def applies_to(self, direction: str) -> bool:
        return self.direction in (direction, "both")

    async def hold(self, pipe: Pipe, arrived: float, nbytes: int) -> None:
        """Delay (or stop) one chunk that ``pipe`` read at ``arrived``; the base toxic does nothing."""

    def _params(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = [self._params()] if self._params() else []
        if self.direction != self.default_direction:
            extra.append(f"direction={self.direction!r}")
        if self.probability != 1:
            extra.append(f"probability={self.probability!r}")
        return f"{type(self).__name__}({', '.join(extra)})"


class Latency(Toxic):
    """Delay each chunk by ``ms`` ± ``jitter_ms`` milliseconds (uniform jitter, never below 0)."""

    default_direction = "downstream"

    def __init__(
        self,
        ms: float,
        jitter_ms: float = 0.0,
        *,
        direction: str | None = None,
        probability: float = 1.0,
        name: str | None = None,
    ):
        self.ms = non_negative("ms", ms)
        self.jitter_ms = non_negative("jitter_ms", jitter_ms)
        super().__init__(direction=direction, probability=probability, name=name)

    async def hold(self, pipe: Pipe, arrived: float, nbytes: int) -> None:
        jitter = pipe.proxy.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        delay = arrived + max(0.0, self.ms + jitter) / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _params(self) -> str:
        return f"{self.ms!r} ms" + (f" ± {self.jitter_ms!r}" if self.jitter_ms else "")


class Bandwidth(Toxic):
    """Limit the byte rate to ``kbps`` kilobits (1000 bits) per second, per connection and direction.

    Each chunk read (up to 64 KiB) leaves when the link would have finished sending it, so transfer times
    are right while the output arrives in chunk-sized steps rather than a smooth trickle.
    """

    default_direction = "downstream"

    def __init__(self, kbps: float, *, direction: str | None = None, probability: float = 1.0, name: str | None = None):
        self.kbps = positive("kbps", kbps)
        super().__init__(direction=direction, probability=probability, name=name)

    async def hold(self, pipe: Pipe, arrived: float, nbytes: int) -> None:
        # a virtual clock per pipe: each chunk may leave only after the previous ones' transmission time
        pipe.free_at = max(pipe.free_at, time.monotonic()) + nbytes * 8 / (self.kbps * 1000)
        await sleep_until(pipe.free_at)

    def _params(self) -> str:
        return f"{self.kbps!r} kbps"


class Reset(Toxic):
    """With ``probability`` per connection, reset it (TCP RST both ways) when it next carries data."""

    def __init__(self, probability: float = 1.0, *, direction: str | None = None, name: str | None = None):
        super().__init__(direction=direction, probability=probability, name=name)

    async def hold(self, pipe: Pipe, arrived: float, nbytes: int) -> None:
        pipe.conn.abort()
        raise ConnectionResetError("reset by the fault proxy")


class Blackhole(Toxic):
    """Read and hold everything, forward nothing while active: requests hang until the caller gives up."""


def check_toxic(toxic: object, name: str = "toxic", also: str = "") -> Toxic:
    """``toxic`` if it is one of the toxics, else a ValueError naming the argument and the kinds."""
    if not isinstance(toxic, Toxic):
        kinds = ", ".join(k.__name__ for k in (Latency, Blackhole, Bandwidth, Reset))
        extra = f" {also}" if also else ""
        raise ValueError(f"{name} must be one of {kinds} (a labkit.faults toxic){extra}, got {toxic!r}")
    return toxic
