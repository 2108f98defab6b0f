"""Exchanges and routing: direct, fanout, topic (``*``/``#``) and headers (x-match all/any).

Why: routing is the core of what a broker does, and each exchange type is a different matching rule
over the same binding table. Destinations are queues or other exchanges (exchange-to-exchange
bindings); the virtual host follows exchange destinations. Topic and headers results are cached per
routing key until the bindings change, so the hot path is a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TYPES = ("direct", "fanout", "topic", "headers")


def _args_key(arguments: dict[str, Any] | None) -> str:
    return repr(sorted((arguments or {}).items()))


class Binding:
    __slots__ = ("destination", "routing_key", "arguments", "words")

    def __init__(self, destination: Any, routing_key: str, arguments: dict[str, Any] | None) -> None:
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = dict(arguments or {})
        self.words = tuple(routing_key.split("."))


def topic_matches(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """AMQP topic match: ``*`` is exactly one word, ``#`` zero or more words.

    Dynamic programming over (pattern word, key word) pairs: linear in their product even for
    patterns like ``#.#.#.x`` that make naive backtracking exponential."""
    n = len(key)
    reachable = [True] + [False] * n  # reachable[j]: the pattern so far matches the first j words
    for word in pattern:
        if word == "#":
            for j in range(1, n + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(n, 0, -1):
                reachable[j] = reachable[j - 1] and (word == "*" or word == key[j - 1])
            reachable[0] = False
    return reachable[n]


def headers_match(arguments: dict[str, Any], headers: dict[str, Any]) -> bool:
    """Headers exchange match; binding keys starting with ``x-`` are not matched unless x-match is
    all-with-x / any-with-x (RabbitMQ 3.10)."""
    mode = arguments.get("x-match", "all")
    with_x = mode.endswith("-with-x") if isinstance(mode, str) else False
    wanted = [(k, v) for k, v in arguments.items() if k != "x-match" and (with_x or not k.startswith("x-"))]
    if mode in ("any", "any-with-x"):
        return any(k in headers and (v is None or headers[k] == v) for k, v in wanted)
    return all(k in headers and (v is None or headers[k] == v) for k, v in wanted)


class Exchange:
    """One exchange: its declaration (for equivalence checks) and its bindings."""

    _CACHE_LIMIT = 4096

    def __init__(
        self,
        name: str,
        type: str,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = dict(arguments or {})
        self.bindings: dict[tuple[Any, ...], Binding] = {}
        self._direct: dict[str, list[Any]] = {}
        self._cache: dict[str, list[Any]] = {}

    def declaration(self) -> tuple[Any, ...]:
        return (self.type, self.durable, self.auto_delete, self.internal)

    def bind(self, destination: Any, routing_key: str, arguments: dict[str, Any] | None) -> None:
        key = (id(destination), routing_key, _args_key(arguments))
        if key in self.bindings:
            return
        self.bindings[key] = Binding(destination, routing_key, arguments)
        self._changed()

    def unbind(self, destination: Any, routing_key: str, arguments: dict[str, Any] | None) -> bool:
        removed = self.bindings.pop((id(destination), routing_key, _args_key(arguments)), None)
        if removed:
            self._changed()
        return removed is not None

    def unbind_all(self, destination: Any) -> int:
        """Remove every binding to ``destination`` (it is being deleted); returns how many."""
        keys = [k for k, b in self.bindings.items() if b.destination is destination]
        for key in keys:
            del self.bindings[key]
        if keys:
            self._changed()
        return len(keys)

    def _changed(self) -> None:
        self._cache.clear()
        if self.type == "direct":
            table: dict[str, list[Any]] = {}
            for b in self.bindings.values():
                dests = table.setdefault(b.routing_key, [])
                if b.destination not in dests:
                    dests.append(b.destination)
            self._direct = table

    def route(self, routing_key: str, message: Any) -> list[Any]:
        """Destinations (queues or exchanges) for a message, without duplicates."""
        kind = self.type
        if kind == "direct":
            return self._direct.get(routing_key) or []
        if kind == "headers":
            headers = message.headers
            return self._unique(b for b in self.bindings.values() if headers_match(b.arguments, headers))
        cached = self._cache.get(routing_key)
        if cached is None:
            if kind == "fanout":
                cached = self._unique(self.bindings.values())
            else:
                words = tuple(routing_key.split("."))
                cached = self._unique(b for b in self.bindings.values() if topic_matches(b.words, words))
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[routing_key] = cached
        return cached

    @staticmethod
    def _unique(bindings: Iterable[Binding]) -> list[Any]:
        out: list[Any] = []
        for b in bindings:
            if b.destination not in out:
                out.append(b.destination)
        return out
