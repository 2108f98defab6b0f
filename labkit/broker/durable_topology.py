"""The durable topology: the exchanges, queues and bindings that survive a restart, as the durability log
records them (store.py) and as they are rebuilt in the vhost when the broker starts.

Why a module of its own: RabbitMQ's rule for what survives (durable exchanges and queues, bindings whose
two ends are durable, a deletion taking the bindings with it) is one set of plain records, applied the same
way live and during replay, and rebuilt through the vhost's own declare and bind calls, so a restored
declaration passes the same checks as a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store
    from .vhost import VHost

log = logging.getLogger(__name__)


class DurableTopology:
    """The durable exchanges, queues and bindings, as plain dicts; the same ``apply`` runs live and
    during replay, so deleting an exchange or queue drops its bindings both times."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: dict[tuple[Any, ...], dict[str, Any]] = {}

    def apply(self, record: dict[str, Any]) -> None:
        op = record["op"]
        if op == "exchange":
            self.exchanges[record["name"]] = record
        elif op == "queue":
            self.queues[record["name"]] = record
        elif op in ("exchange-delete", "queue-delete"):
            table = self.exchanges if op == "exchange-delete" else self.queues
            table.pop(record["name"], None)
            kind = "e" if op == "exchange-delete" else "q"
            for key in [
                k
                for k, b in self.bindings.items()
                if (b["kind"], b["destination"]) == (kind, record["name"])
                or (kind == "e" and b["source"] == record["name"])
            ]:
                del self.bindings[key]
        elif op == "bind":
            self.bindings[binding_key(record)] = record
        elif op == "unbind":
            self.bindings.pop(binding_key(record), None)

    def records(self) -> Iterator[dict[str, Any]]:
        yield from self.exchanges.values()
        yield from self.queues.values()
        yield from self.bindings.values()


def binding_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["source"],
        record["kind"],
        record["destination"],
        record["routing_key"],
        repr(sorted(record["arguments"].items())),
    )


def restore(vhost: VHost, store: Store) -> None:
    """Rebuild the durable topology and re-enqueue the persistent messages (called before the broker
    accepts connections). The vhost logs nothing while the topology is rebuilt (it is already in the
    log); it is attached to the store before the messages go back, so one a queue refuses or expires
    at once is logged as gone."""
    topology = store.topology
    steps: list[tuple[Callable[..., object], tuple[Any, ...]]] = [
        (vhost.exchange_declare, (r["name"], r["type"], False, True, r["auto_delete"], r["internal"], r["arguments"]))
        for r in topology.exchanges.values()
    ]
    steps += [
        (vhost.queue_declare, (None, r["name"], False, True, False, r["auto_delete"], r["arguments"]))
        for r in topology.queues.values()
    ]
    steps += [
        (vhost.queue_bind, (None, r["destination"], r["source"], r["routing_key"], r["arguments"], False))
        if r["kind"] == "q"
        else (vhost.exchange_bind, (r["destination"], r["source"], r["routing_key"], r["arguments"], False))
        for r in topology.bindings.values()
    ]
    for step, args in steps:
        try:
            step(*args)
        except errors.AMQPError as exc:  # e.g. a declaration this broker profile now refuses
            log.warning("not restored from %s: %s%r: %s", store.path, step.__name__, args, exc)
    vhost.store = store
    for queue, msg in store.recovered:
        q = vhost.queues.get(queue)
        if q is None or not q.publish(msg):
            store.remove(queue, msg)
    store.recovered = []
