"""Waiting for something with a deadline (:func:`wait_until`), and names no other run uses (:func:`unique`)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from typing import Any

from labkit._validate import positive


async def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    what: str | Callable[[], str] | None = None,
    interval: float = 0.01,
) -> Any:
    """Wait until ``predicate()`` (a function, or an async function) returns something true, and return it.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``what`` it waited for (a text, or a function
    returning one, so the message can say how far it got: ``what=lambda: f"{n} of 10 acks"``). The
    predicate is checked every ``interval`` seconds; a deadline is not a speed goal, so give it room.
    """
    positive("timeout", timeout)
    positive("interval", interval)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        left = deadline - loop.time()
        if left <= 0:
            described = what() if callable(what) else what
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {described or _describe(predicate)}")
        await asyncio.sleep(min(interval, left))


def _describe(predicate: Callable[[], Any]) -> str:
    name = getattr(predicate, "__qualname__", "") or repr(predicate)
    return "the condition" if name == "<lambda>" else f"{name}()"


def unique(prefix: str = "lab") -> str:
    """``unique("orders")`` -> ``"orders-1a2b3c4d"``: a queue or exchange name no other run uses."""
    if not isinstance(prefix, str) or not prefix or len(prefix) > 200:
        raise ValueError(f"prefix must be a non-empty string of at most 200 characters, got {prefix!r}")
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
