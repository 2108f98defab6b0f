"""Which kind of queue the lab declares, and the one helper that declares a per-run queue.

Why: RabbitMQ 4.3 refuses a *transient non-exclusive* queue (``durable=False, exclusive=False``, which is
aiormq's ``queue_declare`` default) with 541 INTERNAL_ERROR: the ``transient_nonexcl_queues`` feature is
denied by default. So every queue the course declares is one of four kinds, chosen per case:

- **durable with x-expires** (:func:`declare_run_queue`): the queues of one experiment. Durable, so
  RabbitMQ 4.3 accepts them; ``x-expires`` deletes one that nobody has used for
  :data:`RUN_QUEUE_EXPIRES_MS`, so runs that forget to clean up (an interrupted kernel) leave nothing
  behind on a shared broker. Long enough that a learner pausing between cells loses nothing.
- **exclusive**: a queue one connection owns and that dies with it (a worker's private request queue).
- **quorum**: replicated, with a delivery limit (chapter 06's poison-message queue).
- **stream**: an append-only log read from offsets (chapter 07).

Both RabbitMQ 3.10 and 4.3 accept all four with the same arguments, and so does the embedded broker.
"""

from __future__ import annotations

from typing import Any

import aiormq

from labkit._validate import integer, queue_name

__all__ = ["RUN_QUEUE_EXPIRES_MS", "declare_run_queue", "run_queue_arguments"]

#: How long an unused per-run queue lives (ms): 30 minutes, longer than any pause inside a chapter.
RUN_QUEUE_EXPIRES_MS = 30 * 60 * 1000


def run_queue_arguments(
    arguments: dict[str, Any] | None = None, expires_ms: int = RUN_QUEUE_EXPIRES_MS
) -> dict[str, Any]:
    """``arguments`` plus ``x-expires`` (kept if already given; streams, which cannot expire, get none)."""
    if arguments is not None and not isinstance(arguments, dict):
        raise ValueError(f"arguments must be a dict of queue arguments or None, got {arguments!r}")
    merged = dict(arguments or {})
    if merged.get("x-queue-type") != "stream":
        merged.setdefault("x-expires", integer("expires_ms", expires_ms, 1))
    return merged


async def declare_run_queue(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    *,
    arguments: dict[str, Any] | None = None,
    expires_ms: int = RUN_QUEUE_EXPIRES_MS,
) -> Any:
    """Declare ``queue`` as a per-run queue: durable, deleted after ``expires_ms`` unused (``x-expires``).

    Declaring it again with the same arguments is harmless (every labkit part that declares a queue uses
    this helper, so their declarations agree); returns the broker's ``Queue.DeclareOk``.
    """
    return await channel.queue_declare(
        queue_name("queue", queue), durable=True, arguments=run_queue_arguments(arguments, expires_ms)
    )
