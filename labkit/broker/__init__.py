"""``labkit.broker``: an embedded AMQP 0-9-1 broker (on pamqp) that behaves like RabbitMQ 3.10 for
everything the course shows, so the same aiormq code runs against it by default and against a real
RabbitMQ when ``AMQP_URL`` is set.

    broker = await Broker().start()      # 127.0.0.1, ephemeral port
    broker.url                           # amqp://guest:guest@127.0.0.1:PORT/
    broker.queues()                      # depths, consumers, rates per queue
    broker.overview()                    # broker-wide totals
    await broker.reset()                 # fresh state between experiments
    await broker.stop()

Run on its own (as the lab does, in its own process): ``python -m labkit.broker --port 5673``.

Modules, one protocol concern each: ``frames`` (stream framing, hot-path codecs), ``connection``
(handshake, tune, heartbeats, close), ``channel`` (methods, content assembly, delivery tags, confirms),
``vhost`` (exchanges, queues, bindings, dead-lettering, direct reply-to), ``exchange`` (routing),
``queue`` (classic/priority/quorum semantics), ``stream`` (x-queue-type stream), ``message``,
``flow`` (memory alarm), ``errors`` (reply codes), ``server`` (``Broker``).

Where it knowingly differs from RabbitMQ 3.10: nothing is persisted (durable only affects
equivalence checks); the memory alarm counts stored message bytes, not process memory; an oversized
message (> 128 MiB) is refused when its header announces it rather than after buffering it; one
virtual host ("/") and one user; no transactions (tx.*) or CC/BCC headers.
"""

from .errors import AMQPError
from .server import Broker

__all__ = ["Broker", "AMQPError"]
