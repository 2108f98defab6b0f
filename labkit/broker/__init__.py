"""``labkit.broker``: an embedded AMQP 0-9-1 broker (on pamqp) that behaves like RabbitMQ 3.10 for
everything the course shows, so the same aiormq code runs against it or against a real RabbitMQ.

    broker = await Broker().start()      # 127.0.0.1, ephemeral port
    broker.url                           # amqp://guest:guest@127.0.0.1:PORT/
    broker.queues()                      # depths, consumers, rates
    await broker.reset(); await broker.stop()

Run on its own: ``python -m labkit.broker --port 5673``.
"""

from .errors import AMQPError
from .server import Broker

__all__ = ["Broker", "AMQPError"]
