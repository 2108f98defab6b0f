"""Stream queues (x-queue-type stream) over AMQP 0-9-1: an append-only log read non-destructively.

Why: chapter 07 contrasts a queue (a message goes to one consumer, then is gone) with a stream
(every consumer reads the whole log from an offset it picks and can replay). Like RabbitMQ, a stream
consumer must use manual ack and a prefetch; acks only return credit. Each delivery carries the
``x-stream-offset`` header. Retention follows x-max-length-bytes and x-max-age.
"""

from __future__ import annotations

import datetime
import re
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import errors
from .consumer import Consumer
from .message import Message, clone_properties, writable_headers
from .queue import Queue

if TYPE_CHECKING:  # pragma: no cover
    from .vhost import VHost

_AGE = re.compile(r"^(\d+)(Y|M|D|h|m|s)$")
_AGE_SECONDS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


class StreamConsumer(Consumer):
    """A stream consumer reads the log from its own offset (x-stream-offset) instead of taking messages."""

    __slots__ = ("position",)
    position: int


def _max_age(value: Any, name: str) -> float | None:
    if value is None:
        return None
    match = _AGE.match(str(value))
    if not match:
        raise errors.PreconditionFailed(f"invalid arg 'x-max-age' for queue '{name}' in vhost '/': {value!r}")
    return int(match.group(1)) * _AGE_SECONDS[match.group(2)]


class StreamQueue(Queue):
    kind = "stream"
    consumer_class = StreamConsumer

    def __init__(
        self, vhost: VHost, name: str, durable: bool, exclusive_owner: Any, auto_delete: bool, arguments: dict[str, Any]
    ) -> None:
        # properties and arguments of other queue types are refused before (labkit.broker.declare)
        super().__init__(vhost, name, durable, exclusive_owner, auto_delete, arguments)
        self.max_age = _max_age(self.arguments.get("x-max-age"), name)
        self.log: deque[Message] = deque()
        self.times: deque[float] = deque()
        self.first_offset = 0
        self.log_bytes = 0

    @property
    def end(self) -> int:
        return self.first_offset + len(self.log)

    def _delivery_limit(self, args: dict[str, Any]) -> None:
        return None

    def publish(self, msg: Message) -> bool:
        msg.seq = self.end
        self.log.append(msg)
        self.times.append(time.time())
        self.log_bytes += msg.size
        self.vhost.memory.add(msg.size)
        self.stats[0] += 1
        self._trim()
        self.dispatch()
        return True

    def _trim(self) -> None:
        cutoff = time.time() - self.max_age if self.max_age is not None else None
        while len(self.log) > 1 and (
            (self.max_bytes is not None and self.log_bytes > self.max_bytes)
            or (cutoff is not None and self.times[0] < cutoff)
        ):
            msg = self.log.popleft()
            self.times.popleft()
            self.first_offset += 1
            self.log_bytes -= msg.size
            self.vhost.memory.add(-msg.size)

    def start_position(self, spec: Any) -> int:
        """Where a new consumer starts, from its x-stream-offset argument."""
        if spec is None or spec == "next":
            return self.end
        if spec == "first":
            return self.first_offset
        if spec == "last":
            return max(self.first_offset, self.end - 1)
        if isinstance(spec, datetime.datetime):
            stamp = spec.replace(tzinfo=spec.tzinfo or datetime.timezone.utc).timestamp()
            for i, t in enumerate(self.times):
                if t >= stamp:
                    return self.first_offset + i
            return self.end
        if isinstance(spec, int) and not isinstance(spec, bool):
            return min(max(spec, self.first_offset), self.end)
        if isinstance(spec, str) and _AGE.match(spec):  # an interval such as "10m": that long ago
            return self.start_position(
                datetime.datetime.fromtimestamp(time.time() - (_max_age(spec, self.name) or 0), datetime.timezone.utc)
            )
        raise errors.PreconditionFailed(f"invalid x-stream-offset {spec!r}")

    def dispatch(self, now: float | None = None) -> None:
        for consumer in list(self.consumers):
            assert isinstance(consumer, StreamConsumer)  # consumer_class: every consumer here is one
            while consumer.position < self.end and consumer.can_take():
                if consumer.position < self.first_offset:
                    consumer.position = self.first_offset
                msg = self.log[consumer.position - self.first_offset]
                consumer.position += 1
                consumer.unacked += 1
                self.unacked += 1
                self.stats[1] += 1
                consumer.channel.deliver(consumer, msg)

    def outgoing(self, msg: Message, get: bool = False) -> Message:
        props = clone_properties(msg.properties)
        writable_headers(props)["x-stream-offset"] = msg.seq
        return msg.with_properties(props)

    def get(self, no_ack: bool) -> Message | None:
        raise errors.NotImplementedFeature(f"basic.get not supported by stream queues queue '{self.name}' in vhost '/'")

    def settle(self, msg: Message) -> None:
        self.unacked -= 1

    def reject(self, msg: Message) -> None:
        self.settle(msg)

    def requeue(self, msgs: Iterable[Message], failed: bool = True) -> None:
        for _ in msgs:
            self.unacked -= 1

    def add_consumer(self, consumer: Consumer) -> None:
        if consumer.no_ack:
            raise errors.NotImplementedFeature(
                f"automatic acknowledgement not supported by stream queues queue '{self.name}' in vhost '/'"
            )
        if not consumer.limit:
            raise errors.PreconditionFailed(
                f"consumer prefetch count is not set for 'queue '{self.name}' in vhost '/''"
            )
        assert isinstance(consumer, StreamConsumer)  # made by consumer_class
        consumer.position = self.start_position(consumer.arguments.get("x-stream-offset"))
        super().add_consumer(consumer)

    def message_count(self) -> int:
        return len(self.log)

    def declared_count(self) -> int:
        return 0  # RabbitMQ's declare-ok reports 0 for streams

    def purge(self) -> int:
        count = len(self.log)
        self.vhost.memory.add(-self.log_bytes)
        self.first_offset = self.end
        self.log.clear()
        self.times.clear()
        self.log_bytes = 0
        return count

    def _expire(self) -> None:
        self._trim()
