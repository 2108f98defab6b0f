"""A queue's ready messages: the line a queue hands out from, in publish order or by priority.

Why a module of its own: requeue to the original position (redelivered messages go back where they
were, not to the back) and x-max-priority levels are the whole ordering story of a classic queue, and
they are plain data structures that can be tested without a broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import merge

from .message import Message


class Ready:
    """Ready messages ordered by position (``seq``); requeued messages go back where they were."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: deque[Message] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._items)

    def append(self, msg: Message) -> None:
        self._items.append(msg)

    def head(self) -> Message | None:
        return self._items[0] if self._items else None

    def popleft(self) -> Message:
        return self._items.popleft()

    def requeue(self, msgs: list[Message]) -> None:
        """Insert messages (sorted by seq) at their original positions."""
        items = self._items
        if not items or msgs[-1].seq < items[0].seq:
            items.extendleft(reversed(msgs))
        else:
            self._items = deque(merge(msgs, items, key=lambda m: m.seq))

    def clear(self) -> list[Message]:
        out = list(self._items)
        self._items.clear()
        return out


class PriorityReady:
    """x-max-priority: one Ready per priority level, highest first."""

    __slots__ = ("_levels", "max_priority")

    def __init__(self, max_priority: int) -> None:
        self.max_priority = max_priority
        self._levels = [Ready() for _ in range(max_priority + 1)]

    def _level(self, msg: Message) -> Ready:
        return self._levels[min(msg.priority, self.max_priority)]

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def __iter__(self) -> Iterator[Message]:
        for level in reversed(self._levels):
            yield from level

    def append(self, msg: Message) -> None:
        self._level(msg).append(msg)

    def head(self) -> Message | None:
        for level in reversed(self._levels):
            if len(level):
                return level.head()
        return None

    def popleft(self) -> Message:
        for level in reversed(self._levels):
            if len(level):
                return level.popleft()
        raise IndexError("pop from an empty queue")

    def requeue(self, msgs: list[Message]) -> None:
        for level in self._levels:
            mine = [m for m in msgs if self._level(m) is level]
            if mine:
                level.requeue(mine)

    def clear(self) -> list[Message]:
        return [m for level in reversed(self._levels) for m in level.clear()]
