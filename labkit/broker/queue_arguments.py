"""Queue arguments (x-arguments) read with RabbitMQ's refusals: the queue types and overflow modes it
knows, integer limits checked with its wording, and the AMQP type names its messages use.

Why a module of its own: a client learns what a wrong x-max-length or x-overflow does from the exact
406 text RabbitMQ sends ({value_negative,-1}, "expected integer, got longstr"); those rules are shared
by every queue type and by the vhost's equivalence checks, apart from how queues hold messages.
"""

from __future__ import annotations

from typing import Any

from . import errors

OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_TYPES = ("classic", "quorum", "stream")


def amqp_type(value: Any) -> str:
    """The AMQP field type RabbitMQ names in its messages, as pamqp would encode ``value``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "short" if -32768 <= value <= 32767 else "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, str):
        return "longstr"
    return type(value).__name__


def int_arg(args: dict[str, Any], name: str, queue: str, lo: int, hi: int | None = None) -> int | None:
    """An integer queue argument, rejected with RabbitMQ's wording ({value_negative,-1} ...)."""
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problem = f'"expected integer, got {amqp_type(value)}"'
    elif value < lo:
        problem = "{value_zero,%d}" % value if value == 0 else "{value_negative,%d}" % value
    elif hi is not None and value > hi:
        problem = "{max_value_exceeded,%d}" % value
    else:
        return value
    raise errors.PreconditionFailed(f"invalid arg '{name}' for queue '{queue}' in vhost '/': {problem}")


def overflow_mode(args: dict[str, Any], queue: str) -> str:
    """x-overflow: what a full queue does with a new message (drop-head unless set)."""
    overflow: str = args.get("x-overflow", "drop-head")
    if overflow not in OVERFLOW_MODES:
        raise errors.PreconditionFailed(f"invalid arg 'x-overflow' for queue '{queue}' in vhost '/': invalid_overflow")
    return overflow
