"""Memory alarm: block publishers while stored message bytes exceed a limit, like RabbitMQ's
vm_memory_high_watermark does for its memory.

Why: chapter 04 shows back-pressure reaching the producer. As in RabbitMQ, only connections that
publish while the alarm is on are blocked (connection.blocked, socket no longer read); consumers
keep going, which is what clears the alarm. Counting stored message bytes (ready and
unacknowledged) instead of process RSS makes the threshold deterministic for experiments and tests.
"""

from __future__ import annotations

from collections.abc import Callable


class MemoryAlarm:
    __slots__ = ("limit", "used", "blocked", "_on_change")

    def __init__(self, limit: int | None, on_change: Callable[[bool], None]) -> None:
        self.limit = limit
        self.used = 0
        self.blocked = False
        self._on_change = on_change

    def add(self, nbytes: int) -> None:
        """Account stored bytes (negative when released); flips the alarm across the limit."""
        self.used += nbytes
        if self.limit is not None and (self.used > self.limit) != self.blocked:
            self.blocked = not self.blocked
            self._on_change(self.blocked)

    def reset(self) -> None:
        self.used = 0
        if self.blocked:
            self.blocked = False
            self._on_change(False)
