"""Deleting and unbinding what is already gone, as RabbitMQ 3.10.8 answers (checked here).

Why it matters: cleanup code runs after queues auto-delete or after another cleanup step; aio-pika's
RPC close() cancels its consumer (the auto-delete reply queue goes) and then unbinds that queue.
RabbitMQ answers all of these with the -ok method; only binding (not unbinding) a missing queue is a 404.
"""

import aiormq
import pytest


async def test_unbinding_a_missing_queue_is_unbind_ok(client):
    exchange = await client.exchange("direct")
    ok = await (await client.channel()).queue_unbind(client.queue_name(), exchange, "k")
    assert ok.name == "Queue.UnbindOk"


async def test_unbinding_from_a_missing_exchange_is_unbind_ok(client):
    queue = await client.queue()
    ok = await (await client.channel()).queue_unbind(queue, client.exchange_name(), "k")
    assert ok.name == "Queue.UnbindOk"


async def test_unbinding_what_was_never_bound_is_unbind_ok(client):
    queue, exchange = await client.queue(), await client.exchange("direct")
    ok = await (await client.channel()).queue_unbind(queue, exchange, "never")
    assert ok.name == "Queue.UnbindOk"


async def test_unbinding_an_auto_deleted_queue_after_its_consumer_cancelled(client):
    exchange = await client.exchange("direct")
    queue = await client.queue(auto_delete=True)
    channel = await client.channel()
    await channel.queue_bind(queue, exchange, "k")
    inbox = await client.consume(channel, queue)
    await channel.basic_cancel(inbox.consumer_tag)  # the queue auto-deletes
    assert (await channel.queue_unbind(queue, exchange, "k")).name == "Queue.UnbindOk"


@pytest.mark.parametrize("missing", ["destination", "source"])
async def test_exchange_unbind_with_a_missing_side_is_unbind_ok(client, missing):
    present = await client.exchange("direct")
    gone = client.exchange_name()
    destination, source = (gone, present) if missing == "destination" else (present, gone)
    ok = await (await client.channel()).exchange_unbind(destination, source, "k")
    assert ok.name == "Exchange.UnbindOk"


async def test_deleting_a_missing_queue_is_delete_ok_with_no_messages(client):
    ok = await (await client.channel()).queue_delete(client.queue_name())
    assert (ok.name, ok.message_count) == ("Queue.DeleteOk", 0)


async def test_deleting_a_missing_exchange_is_delete_ok(client):
    ok = await (await client.channel()).exchange_delete(client.exchange_name())
    assert ok.name == "Exchange.DeleteOk"


async def test_binding_a_missing_queue_is_still_not_found(client):
    exchange = await client.exchange("direct")
    queue = client.queue_name()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as refused:
        await (await client.channel()).queue_bind(queue, exchange, "k")
    assert refused.value.args[0] == f"NOT_FOUND - no queue '{queue}' in vhost '/'"
