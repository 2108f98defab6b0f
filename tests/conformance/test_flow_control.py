"""Flow control: a memory alarm blocks publishers (connection.blocked) until consumers drain it.

Runs on the embedded broker only, configured with a tiny memory_limit. The shared RabbitMQ's
memory high watermark cannot be changed from a test (and lowering it would block every other user).
"""

import pytest
from pamqp import commands as spec

from .support import WireTap, text

LIMIT = 10_000
BODY = "x" * 4_000


@pytest.fixture
async def alarmed(reconfigure, client):
    """A Client on an embedded broker with memory_limit=LIMIT; the alarm is cleared before it closes
    (a blocked connection is not read, so it could not be closed cleanly)."""
    broker = await reconfigure("RabbitMQ's memory alarm threshold cannot be changed from a test", memory_limit=LIMIT)
    yield client
    await broker.reset()


async def fill_past_the_limit(client, queue, tap):
    """Publish (confirmed) until the stored bytes exceed LIMIT, then wait for connection.blocked."""
    channel = await (await client.connect(transport_factory=tap)).channel()
    for _ in range(LIMIT // len(BODY) + 1):
        await channel.basic_publish(BODY.encode(), routing_key=queue)
    await tap.wait_for(spec.Connection.Blocked)
    return channel


async def test_publisher_is_blocked_when_stored_bytes_exceed_the_memory_limit(alarmed):
    queue = await alarmed.queue()
    tap = WireTap()
    await fill_past_the_limit(alarmed, queue, tap)
    assert not any(isinstance(frame, spec.Connection.Unblocked) for _, frame, _ in tap.frames())


async def test_publisher_is_unblocked_after_consumers_drain_the_queue(alarmed):
    queue = await alarmed.queue()
    tap = WireTap()
    publisher = await fill_past_the_limit(alarmed, queue, tap)
    drained = await alarmed.get_all(queue)
    assert len(drained) == LIMIT // len(BODY) + 1
    await tap.wait_for(spec.Connection.Unblocked)
    await publisher.basic_publish(b"after", routing_key=queue)
    assert text(await alarmed.get_all(queue)) == ["after"]
