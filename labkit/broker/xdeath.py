"""Dead-lettering's bookkeeping: the message a queue republishes to its dead-letter exchange, with the
x-death history RabbitMQ writes, and the queues that message may not reach.

Why a module of its own: the history is kept two ways (RabbitMQ 3.10 reads and rewrites the x-death
header the message carries; 4.x, the profile's ``broker_side_deaths``, keeps its own history and ignores
a header a client republished), and its rules (one entry per queue and reason, counted, newest first;
the first- and last-death headers; the expiration moved to original-expiration; a cycle broken unless a
death was a rejection) are the same whichever exchange and queues the message goes to next, which is
the vhost's business.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from .message import Message, clone_properties, writable_headers

if TYPE_CHECKING:  # pragma: no cover
    from .queue import Queue


def dead_lettered(queue: Queue, msg: Message, reason: str, dlx: str, broker_side: bool) -> tuple[Message, set[Any]]:
    """The message to republish to ``dlx``, ``queue``'s dead-letter exchange, and the names of the queues
    it may not reach: those it already died in (RabbitMQ's cycle check), unless one of its deaths was a
    rejection. Its x-death history comes from its x-death header (RabbitMQ 3.10) or from the broker's
    own history of it (4.x, ``broker_side``)."""
    props = clone_properties(msg.properties)
    headers = writable_headers(props)
    earlier: list[dict[str, Any]] | None = msg.deaths if broker_side else headers.get("x-death")
    deaths = [dict(d) for d in earlier or []]
    entry = next((d for d in deaths if d.get("queue") == queue.name and d.get("reason") == reason), None)
    if entry is not None:
        deaths.remove(entry)
        entry["count"] = int(entry.get("count", 0)) + 1
        entry["time"] = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    else:
        entry = {
            "count": 1,
            "reason": reason,
            "queue": queue.name,
            "time": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
            "exchange": msg.exchange,
            "routing-keys": [msg.routing_key],
        }
        if props.expiration is not None:
            entry["original-expiration"] = props.expiration
    deaths.insert(0, entry)
    props.expiration = None
    headers["x-death"] = deaths
    if broker_side:  # 4.x: first/last death from its own history, whatever the client sent
        death = {"reason": reason, "queue": queue.name, "exchange": msg.exchange}
        for key, value in death.items():
            if not msg.deaths:
                headers[f"x-first-death-{key}"] = value
            headers[f"x-last-death-{key}"] = value
    else:
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", queue.name)
        headers.setdefault("x-first-death-exchange", msg.exchange)
    routing_key = queue.dlrk if queue.dlrk is not None else msg.routing_key
    dead = Message(dlx, routing_key, b"", msg.body)
    dead.rewrite(props)
    dead.deaths = deaths
    rejected = any(d.get("reason") == "rejected" for d in deaths)
    return dead, set() if rejected else {d.get("queue") for d in deaths}
