"""The checks RabbitMQ runs on a queue.declare that creates a queue, in RabbitMQ's order.

Why a module of its own: which refusal a client sees when a declaration is wrong in several ways at
once depends on the order of the checks, and that order spans the channel, rabbit_amqqueue and the
queue type (rabbit_channel.erl handle_method queue.declare -> rabbit_amqqueue:declare ->
rabbit_queue_type:declare, in 3.10.8 and 4.3.0 alike):

1. arguments that belong to another queue type (``check_arguments_key``): 406;
2. (4.3) ``x-queue-version`` other than 2 (CQv1 removed): 406;
3. (4.3) a transient non-exclusive queue (deprecated feature ``transient_nonexcl_queues``): 541,
   closing the connection;
4. the queue type's properties: quorum and stream queues refuse auto-delete, exclusive, non-durable,
   in that order: 406;
5. (4.3) ``x-queue-master-locator`` on a classic queue (deprecated ``queue_master_locator``): 541.

Argument values (``x-max-length: -1``) are checked when the queue object is built, after these.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .profiles import Profile, deprecated

# queue_arguments of rabbit_classic_queue / rabbit_quorum_queue / rabbit_stream_queue:capabilities()
# (3.10.8; 4.3.0 adds only arguments the embedded broker does not implement).
QUEUE_ARGUMENTS = {
    "classic": frozenset(
        {
            "x-expires",
            "x-message-ttl",
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-max-length",
            "x-max-length-bytes",
            "x-max-priority",
            "x-overflow",
            "x-queue-mode",
            "x-queue-version",
            "x-single-active-consumer",
            "x-queue-type",
            "x-queue-master-locator",
            "x-queue-leader-locator",
        }
    ),
    "quorum": frozenset(
        {
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-dead-letter-strategy",
            "x-expires",
            "x-max-length",
            "x-max-length-bytes",
            "x-max-in-memory-length",
            "x-max-in-memory-bytes",
            "x-overflow",
            "x-single-active-consumer",
            "x-queue-type",
            "x-quorum-initial-group-size",
            "x-delivery-limit",
            "x-message-ttl",
            "x-queue-leader-locator",
        }
    ),
    "stream": frozenset(
        {
            "x-max-length-bytes",
            "x-queue-type",
            "x-max-age",
            "x-stream-max-segment-size-bytes",
            "x-initial-cluster-size",
            "x-queue-leader-locator",
        }
    ),
}
_ALL_ARGUMENTS = frozenset().union(*QUEUE_ARGUMENTS.values())
_TYPE_MODULES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}


def check_new_queue(
    profile: Profile, name: str, kind: str, durable: bool, exclusive: bool, auto_delete: bool, arguments: dict[str, Any]
) -> None:
    """Raise the AMQP error RabbitMQ answers a declaration of a new queue with, if any."""
    where = f"queue '{name}' in vhost '/'"
    allowed = QUEUE_ARGUMENTS[kind]
    for key in arguments:
        if key in _ALL_ARGUMENTS and key not in allowed:
            raise errors.PreconditionFailed(f"invalid arg '{key}' for {where} of queue type {_TYPE_MODULES[kind]}")
    version = arguments.get("x-queue-version")
    if version is not None and not profile.queue_version_1 and version != 2 and isinstance(version, int):
        raise errors.PreconditionFailed(
            f"invalid arg 'x-queue-version' for {where}: \"unsupported queue version '{version}'\""
        )
    if profile.deny_transient_nonexcl and not durable and not exclusive:
        raise errors.InternalError(deprecated("transient_nonexcl_queues"))
    if kind != "classic":
        for refused, prop in (
            (auto_delete, "auto-delete"),
            (exclusive, "exclusive-owner"),
            (not durable, "non-durable"),
        ):
            if refused:
                raise errors.PreconditionFailed(f"invalid property '{prop}' for {where}")
    elif profile.deny_queue_master_locator and "x-queue-master-locator" in arguments:
        raise errors.InternalError(deprecated("queue_master_locator"))
