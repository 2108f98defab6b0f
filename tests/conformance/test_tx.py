"""Transactions (tx.select / tx.commit / tx.rollback), as RabbitMQ 3.10.8 answers them (checked here).

A publish inside a transaction reaches its queue only at commit and is gone after a rollback; an ack
inside a transaction settles at commit, and after a rollback the delivery is unacknowledged again
(still held by the channel, not requeued). A channel is transactional or confirming, never both.
"""

import aiormq
import pytest
from pamqp import commands as spec

from .support import closed_by_broker, text


async def tx_channel(client):
    channel = await client.channel(publisher_confirms=False)
    await channel.tx_select()
    return channel


async def test_publishes_wait_for_commit(client):
    queue = await client.queue()
    channel = await tx_channel(client)
    await channel.basic_publish(b"a", routing_key=queue)
    await channel.basic_publish(b"b", routing_key=queue)
    assert await client.message_count(queue) == 0
    await channel.tx_commit()
    assert text(await client.get_all(queue)) == ["a", "b"]


async def test_rollback_discards_the_publishes(client):
    queue = await client.queue()
    channel = await tx_channel(client)
    await channel.basic_publish(b"gone", routing_key=queue)
    await channel.tx_rollback()
    await channel.basic_publish(b"kept", routing_key=queue)
    await channel.tx_commit()
    assert text(await client.get_all(queue)) == ["kept"]


async def acked_in_a_transaction(client):
    """A queue whose one message a transactional channel has taken and acked (not committed)."""
    queue = await client.queue()
    await client.publish(queue, "m")
    channel = await tx_channel(client)
    message = await channel.basic_get(queue)
    await channel.basic_ack(message.delivery.delivery_tag)
    return queue, channel, message


async def test_ack_settles_at_commit_and_rollback_makes_it_unacked_again(client):
    queue, channel, message = await acked_in_a_transaction(client)
    await channel.tx_rollback()
    # still unacknowledged on this channel: not requeued, and the tag can be acked again
    assert await client.message_count(queue) == 0
    await channel.basic_ack(message.delivery.delivery_tag)
    await channel.tx_commit()
    await channel.close()
    assert await client.message_count(queue) == 0


async def test_uncommitted_ack_is_requeued_when_the_channel_closes(client):
    queue, channel, _message = await acked_in_a_transaction(client)
    await channel.close()  # the ack was never committed
    assert [(m.body, m.delivery.redelivered) for m in await client.get_all(queue)] == [(b"m", True)]


async def test_nack_in_a_transaction_requeues_at_commit(client):
    queue = await client.queue()
    await client.publish(queue, "m")
    channel = await tx_channel(client)
    message = await channel.basic_get(queue)
    await channel.basic_nack(message.delivery.delivery_tag, requeue=True)
    assert await client.message_count(queue) == 0
    await channel.tx_commit()
    assert await client.message_count(queue) == 1


async def test_commit_without_select_is_precondition_failed(client):
    channel = await client.channel(publisher_confirms=False)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.tx_commit()
    assert refused.value.args[0] == "PRECONDITION_FAILED - channel is not transactional"


async def test_tx_on_a_confirming_channel_is_refused(client):
    channel = await client.channel()  # aiormq turns confirms on
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.tx_select()
    assert refused.value.args[0] == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"


async def test_confirms_on_a_transactional_channel_are_refused(client):
    channel = await tx_channel(client)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.rpc(spec.Confirm.Select(), timeout=5)  # aiormq has no call for it: send it raw
    assert refused.value.args[0] == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"


async def test_missing_exchange_is_refused_at_publish_not_at_commit(client):
    channel = await tx_channel(client)
    await channel.basic_publish(b"m", exchange=client.exchange_name(), routing_key="k")
    error = await closed_by_broker(channel)
    assert error.args[0].startswith("NOT_FOUND - no exchange")
