"""Measuring message order: how often a consumer's effects happen out of publish order, overall and per key.

Why: one queue with one consumer applies messages in the order they were published. Competing consumers
(and requeued messages) do not: consumer B may finish message 8 while consumer A is still on message 7.
Usually only the order *per key* matters (the events of one order or one account), which is why brokers
and logs partition by key: every message of a key goes to the same queue, and one consumer per queue keeps
that key's order while the keys are worked in parallel.

    order_breaks([1, 2, 4, 3, 5])                         # -> 1 (3 arrived after 4)
    breaks_per_key([("a", 1), ("b", 1), ("a", 0)])        # -> {"a": 1, "b": 0}
    partition("customer-7", 4)                            # -> which of 4 queues this key goes to
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from labkit._validate import integer

__all__ = ["breaks_per_key", "order_breaks", "partition"]


def order_breaks(sequence: Iterable[Any]) -> int:
    """How many items arrived after an item with a higher sequence number (each such item is one break)."""
    breaks, highest = 0, None
    for i, seq in enumerate(sequence):
        if isinstance(seq, bool) or not isinstance(seq, (int, float)):
            raise ValueError(f"sequence[{i}] must be a number, got {seq!r}")
        if highest is not None and seq < highest:
            breaks += 1
        else:
            highest = seq
    return breaks


def breaks_per_key(pairs: Sequence[tuple[Hashable, Any]]) -> dict[Hashable, int]:
    """``order_breaks`` of each key's own sequence, from ``(key, seq)`` pairs in the order applied."""
    per_key: dict[Hashable, list[Any]] = {}
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"pairs[{i}] must be a (key, seq) tuple, got {pair!r}")
        per_key.setdefault(pair[0], []).append(pair[1])
    return {key: order_breaks(seqs) for key, seqs in per_key.items()}


def partition(key: str, partitions: int) -> int:
    """The partition (0 .. partitions-1) for ``key``: a stable hash (CRC-32), the same in every process and
    run -- unlike Python's ``hash()`` of a string, which changes per process."""
    integer("partitions", partitions, 1)
    if not isinstance(key, str):
        raise ValueError(f"key must be a string, got {key!r}")
    return zlib.crc32(key.encode()) % partitions
