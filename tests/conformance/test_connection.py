"""Connection: authentication, advertised capabilities, tuning, heartbeats, closing, virtual hosts."""

import asyncio

import aiormq
import pytest
from pamqp import commands as spec
from yarl import URL

from .support import WireTap

CAPABILITIES = [
    "publisher_confirms",
    "basic.nack",
    "consumer_cancel_notify",
    "exchange_exchange_bindings",
    "connection.blocked",
    "per_consumer_qos",
    "direct_reply_to",
]


async def test_wrong_password_is_refused_with_access_refused(client):
    url = URL(client.url).with_password("not-the-password")
    # RabbitMQ answers start-ok with Connection.Close 403 ACCESS_REFUSED (the client advertises
    # authentication_failure_close); aiormq turns exactly that code into ProbableAuthenticationError.
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError, match="ACCESS_REFUSED"):
        await client.connect(str(url))


async def test_unknown_user_is_refused_with_access_refused(client):
    url = URL(client.url).with_user("no-such-user").with_password("guest")
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError, match="ACCESS_REFUSED"):
        await client.connect(str(url))


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_server_advertises_capability(client, capability):
    connection = await client.connect()
    assert connection.server_properties["capabilities"].get(capability) is True


async def test_server_proposes_default_tuning(client):
    tap = WireTap()
    await client.connect(transport_factory=tap)
    tune = next(frame for _, frame, _ in tap.frames() if isinstance(frame, spec.Connection.Tune))
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


async def test_client_accepts_server_channel_max_and_frame_max(client):
    connection = await client.connect()
    assert (connection.connection_tune.channel_max, connection.connection_tune.frame_max) == (2047, 131072)


async def test_broker_sends_heartbeats_at_the_negotiated_interval(client):
    tap = WireTap()
    # heartbeat=1 in TuneOk: RabbitMQ then sends a heartbeat frame about every 0.5 s on an idle link.
    await client.connect(str(URL(client.url).update_query(heartbeat=1)), transport_factory=tap)
    await asyncio.sleep(1.6)
    assert tap.heartbeats() >= 1


async def test_idle_connection_without_negotiated_heartbeat_gets_none(client):
    tap = WireTap()
    await client.connect(str(URL(client.url).update_query(heartbeat=0)), transport_factory=tap)
    await asyncio.sleep(0.6)
    assert tap.heartbeats() == 0


async def test_clean_close_is_answered_with_close_ok(client):
    tap = WireTap()
    connection = await client.connect(transport_factory=tap)
    await (await connection.channel()).queue_declare(exclusive=True)
    await connection.close()
    channel, last, _ = tap.frames()[-1]
    assert (channel, type(last)) == (0, spec.Connection.CloseOk)


async def test_broker_keeps_serving_after_a_client_closes(client):
    await (await client.connect()).close()
    ok = await (await client.channel()).queue_declare(exclusive=True)
    assert ok.queue.startswith("amq.gen-")


async def test_unknown_vhost_is_refused_with_not_allowed(client):
    tap = WireTap()
    # aiormq does not expect Connection.Close in answer to Connection.Open and raises InvalidFrameError;
    # the wire shows RabbitMQ's reply: 530 NOT_ALLOWED ("vhost ... not found").
    with pytest.raises(aiormq.exceptions.AMQPError):
        await client.connect(str(URL(client.url).with_path("/no-such-vhost")), transport_factory=tap)
    close = next(frame for _, frame, _ in tap.frames() if isinstance(frame, spec.Connection.Close))
    assert close.reply_code == 530
    assert close.reply_text.startswith("NOT_ALLOWED")
