"""Message TTL set by the publisher: the expiration property, checked at publish time, and how it
combines with a queue's x-message-ttl.

Why a module of its own: RabbitMQ parses the property with Erlang's string:to_integer and refuses it
with precise reasons (a 406 closing the channel), and the shorter of the two TTLs wins; both rules are
about the message's deadline, not about a queue's line.
"""

from __future__ import annotations

import re

from pamqp import commands

from . import errors

_EXPIRATION = re.compile(r"([+-]?[0-9]+)(.*)", re.S)
_MAX_EXPIRY_MS = 315_360_000_000  # ten years (rabbit_misc:check_expiry)


def validate_expiration(props: commands.Basic.Properties) -> None:
    """An expiration that is not a non-negative integer is a 406 at publish time, with RabbitMQ's reason
    (rabbit_basic:parse_expiration reads it with Erlang's string:to_integer: an optional sign, digits,
    nothing after them)."""
    value = props.expiration
    if value is None:
        return
    match = _EXPIRATION.fullmatch(value) if value.isascii() else None
    if match is None:
        reason = "no_integer"
    elif match.group(2):
        reason = '{leftover_string,"%s"}' % match.group(2)
    elif int(match.group(1)) < 0:
        reason = "{value_negative,%d}" % int(match.group(1))
    elif int(match.group(1)) > _MAX_EXPIRY_MS:
        reason = "{value_too_large,%d}" % int(match.group(1))
    else:
        return
    raise errors.PreconditionFailed(f"invalid expiration '{value}': {reason}")


def effective_ttl(queue_ttl_ms: int | None, expiration: str | None) -> int | None:
    """Milliseconds a message may wait in a queue: the shorter of x-message-ttl and its (validated)
    expiration property, None when neither is set."""
    if expiration is None:
        return queue_ttl_ms
    return min(queue_ttl_ms, int(expiration)) if queue_ttl_ms is not None else int(expiration)
