"""RabbitMQ's checks on a redeclaration of an existing exchange or queue, with its reply texts.

Why a module of its own: what a client sees when a declaration differs from the existing one is
RabbitMQ's exact text, code and order (exclusive access first, 405, then the flags and the arguments
in RabbitMQ's order, 406: rabbit_amqqueue and rabbit_exchange assert_equivalence), and the conformance
suite compares them with RabbitMQ's; the vhost only decides when to check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .queue_arguments import amqp_type

if TYPE_CHECKING:  # pragma: no cover
    from .exchange import Exchange
    from .queue import Queue

# Arguments compared on redeclaration (RabbitMQ's equivalence check).
_EQUIV_ARGS = (
    "x-message-ttl",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-queue-type",
    "x-delivery-limit",
    "x-max-age",
    "x-expires",
    "x-single-active-consumer",
)


def locked(name: str) -> errors.ResourceLocked:
    """The 405 for a queue another connection owns, or whose exclusive flag does not match."""
    return errors.ResourceLocked(
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally "
        "declared on another connection or the exclusive property value does not match that of the "
        "original declaration."
    )


def check_exchange(existing: Exchange, kind: str, durable: bool, auto_delete: bool, internal: bool) -> None:
    """406 if the declaration's type or flags differ from the existing exchange's."""
    for field, got, have in zip(
        ("type", "durable", "auto_delete", "internal"),
        (kind, durable, auto_delete, internal),
        existing.declaration(),
    ):
        if got != have:
            shown = (got, have) if field == "type" else (_bool(got), _bool(have))
            raise errors.PreconditionFailed(
                f"inequivalent arg '{field}' for exchange '{existing.name}' in vhost '/': "
                f"received '{shown[0]}' but current is '{shown[1]}'"
            )


def check_queue(
    q: Queue, conn: Any, durable: bool, exclusive: bool, auto_delete: bool, arguments: dict[str, Any]
) -> None:
    """RabbitMQ's assert_equivalence: exclusive access first (405, strict: the exclusive flag must match
    too), then durable, auto_delete and the arguments (406)."""
    if q.owner is not (conn if exclusive else None):
        raise locked(q.name)
    for field, flag, current in zip(("durable", "auto_delete"), (durable, auto_delete), (q.durable, q.auto_delete)):
        if flag != current:
            raise errors.PreconditionFailed(
                f"inequivalent arg '{field}' for queue '{q.name}' in vhost '/': "
                f"received '{_bool(flag)}' but current is '{_bool(current)}'"
            )
    for arg in _EQUIV_ARGS:
        got, have = arguments.get(arg), q.arguments.get(arg)
        if arg == "x-queue-type" and (got or "classic") == (have or "classic"):
            continue
        if got != have:
            if got is not None and have is not None:
                detail = f"received '{got}' but current is '{have}'"
            else:
                detail = f"received {_describe(got)} but current is {_describe(have)}"
            raise errors.PreconditionFailed(f"inequivalent arg '{arg}' for queue '{q.name}' in vhost '/': {detail}")


def _bool(value: object) -> str:
    return "true" if value else "false"


def _describe(value: Any) -> str:
    return "none" if value is None else f"the value '{value}' of type '{amqp_type(value)}'"
