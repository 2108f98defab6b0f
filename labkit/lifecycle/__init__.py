"""The lifecycle layer every lab part stands on: one way to start, stop, wait and name things.

Why: a notebook re-runs cells, interrupts them and restarts them. A part that starts half-way and leaks a
socket, or a wait with no deadline, turns one mistake into a hung kernel. So every part of the lab follows
one protocol (:class:`Component`: ``await part.start()`` returns the part, ``await part.stop()`` releases it,
``part.running`` says which, and ``async with part:`` does both), and the two kinds of plumbing every part
needs are written once here:

- :class:`AmqpWorker` -- connect, open a channel, declare, set the prefetch (qos), consume, close. Every
  delivery a worker gets goes through :meth:`AmqpWorker.deliver` and every message it publishes through
  :func:`publish_message`: the two places where a recorder can watch a message's life.
- :class:`HttpApp` -- an aiohttp application served on an ephemeral 127.0.0.1 port, stopped without
  waiting for slow requests.

:func:`wait_until` is the one way to wait for something to become true: always with a deadline, and a
``TimeoutError`` that says what it waited for. :func:`unique` makes a name no other run uses (several
people may share one RabbitMQ).

One module each: ``parts`` (the protocol, the base and its guards), ``waiting``, ``amqp_worker`` and
``http_app``; this package's names are the layer's whole interface.

    async with Lab() as lab:
        reader = await lab.start(StreamReader(lab.amqp_url, "history", offset="first"))
        await wait_until(lambda: len(reader.entries) >= 10, timeout=5, what="10 history entries")
"""

from .amqp_worker import CONNECTION_ERRORS, AmqpWorker, delivery_tag, publish_message
from .http_app import HttpApp
from .parts import Component, Part, started, stopped_on_failure
from .waiting import unique, wait_until

__all__ = [
    "CONNECTION_ERRORS",
    "AmqpWorker",
    "Component",
    "HttpApp",
    "Part",
    "delivery_tag",
    "publish_message",
    "started",
    "stopped_on_failure",
    "unique",
    "wait_until",
]
