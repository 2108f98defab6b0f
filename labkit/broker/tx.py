"""AMQP transactions (tx.select / tx.commit / tx.rollback) on one channel, with RabbitMQ's semantics.

Why: learners wrap publishes in transactions to make "all or nothing" visible, and client libraries
(aio-pika's ``channel.transaction()``) expose it. RabbitMQ (rabbit_channel.erl, 3.10.8 and 4.3.0):

- a publish in a transaction is checked and routed at once (a missing exchange is still a 404 then),
  but reaches its queues only at tx.commit; tx.rollback discards it;
- basic.ack / nack / reject in a transaction take the delivery tags at once (acking a tag twice is
  still "unknown delivery tag"), but settle the messages only at commit; rollback makes those
  deliveries unacknowledged again, still held by the channel (not requeued);
- at commit the publishes go first, in order, then the settlements; tx.commit-ok follows;
- a channel is either transactional or in confirm mode: switching is a 406 (checked by the channel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Transaction:
    """The work a transactional channel holds until commit."""

    __slots__ = ("publishes", "settlements")

    def __init__(self) -> None:
        self.publishes: list[Callable[[], Any]] = []
        #: (settle function, {delivery tag: unacked entry}) in the order the client sent them
        self.settlements: list[tuple[Callable[[list[Any]], None], dict[int, Any]]] = []

    def commit(self) -> list[Any]:
        """Run the held publishes, then the held settlements; return every settled entry."""
        publishes, settlements = self.publishes, self.settlements
        self.publishes, self.settlements = [], []
        for publish in publishes:
            publish()
        settled = []
        for settle, entries in settlements:
            taken = list(entries.values())
            settle(taken)
            settled += taken
        return settled

    def rollback(self) -> dict[int, Any]:
        """Forget the publishes; hand back the deliveries whose settlement is undone, by tag."""
        held: dict[int, Any] = {}
        for _settle, entries in self.settlements:
            held.update(entries)
        self.publishes, self.settlements = [], []
        return held
