"""AMQP heartbeats on one connection: a heartbeat frame when the broker has been silent, a close when the
client has.

Why a module of its own: the timing is RabbitMQ's (a check every half period; a heartbeat frame only
when nothing else was sent; two whole periods without a byte from the client close the connection) and
does not depend on what the frames carry; the connection only says when it heard and when it spoke.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Heartbeat:
    """Watches one connection's traffic once ``start`` is given the negotiated period (seconds).

    The connection sets ``heard`` when data arrives and ``spoke`` when it writes; ``send`` writes a
    heartbeat frame and ``expire`` closes the connection whose client went silent.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[], None], expire: Callable[[], None]) -> None:
        self.heard = True
        self.spoke = True
        self._loop = loop
        self._send = send
        self._expire = expire
        self._silent_ticks = 0
        self._tick: asyncio.TimerHandle | None = None  # the next check

    def start(self, period: int) -> None:
        interval = period / 2
        self._tick = self._loop.call_later(interval, self._check, interval)

    def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _check(self, interval: float) -> None:
        self._tick = None
        self._silent_ticks = 0 if self.heard else self._silent_ticks + 1
        self.heard = False
        if self._silent_ticks >= 4:  # two heartbeat periods of silence, like RabbitMQ
            self._expire()
            return
        if not self.spoke:
            self._send()
        self.spoke = False
        self._tick = self._loop.call_later(interval, self._check, interval)
