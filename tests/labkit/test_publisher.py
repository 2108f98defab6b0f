"""labkit.publisher: through a fault proxy that resets the broker link, fire-and-forget loses messages it
believes sent; confirms with retry lose none (real broker: the embedded one, or AMQP_URL)."""

import asyncio
import logging

import pytest

from labkit.deadletter import take_all
from labkit.faults import Reset
from labkit.publisher import Publisher
from labkit.queues import declare_run_queue


async def _publish_through_resets(lab, unique, confirms):
    """Publish 150 messages through a proxy that resets the connection three times; return (sent, received)."""
    queue = unique("pub")
    channel = await lab.channel()
    await declare_run_queue(channel, queue)
    proxy = await lab.proxy("amqp")
    publisher = await Publisher(proxy.via(lab.amqp_url), confirms=confirms, backoff=0.01).start()
    try:
        for i in range(150):
            if i in (30, 70, 110):
                # the next bytes the client sends kill the link; reconnecting works again 50 ms later
                proxy.set(Reset(direction="upstream"))
                asyncio.get_running_loop().call_later(0.05, proxy.clear)
            await publisher.publish(queue, b"x", message_id=f"m{i}")
    finally:
        await publisher.stop()
        await lab.remove(proxy)
    await asyncio.sleep(0.2)  # let the broker settle what it received
    received = [m.header.properties.message_id for m in await take_all(channel, queue)]
    await channel.queue_delete(queue)
    return publisher, received


async def test_confirms_with_retry_lose_nothing(lab, unique):
    publisher, received = await _publish_through_resets(lab, unique, confirms=True)
    assert publisher.errors >= 3 and publisher.connections >= 4
    assert set(publisher.sent) == {f"m{i}" for i in range(150)}
    assert set(publisher.sent) <= set(received)


async def test_fire_and_forget_loses_messages_it_believes_sent(lab, unique):
    publisher, received = await _publish_through_resets(lab, unique, confirms=False)
    lost = set(publisher.sent) - set(received)
    assert len(lost) >= 1
    assert {"m30", "m70", "m110"} <= set(publisher.sent)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="amqp_url"):
        Publisher("http://x")
    with pytest.raises(ValueError, match="max_attempts"):
        Publisher("amqp://127.0.0.1/", max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        Publisher("amqp://127.0.0.1/", timeout=0)


async def test_expected_resets_are_not_logged_as_warnings_while_a_publisher_runs(lab, unique, caplog):
    await _publish_through_resets(lab, unique, confirms=True)
    assert not [r for r in caplog.records if r.name == "aiormq.connection" and r.levelname == "WARNING"]
    assert not logging.getLogger("aiormq.connection").filters  # removed when the publisher stopped
