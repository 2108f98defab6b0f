"""labkit.broker.auth and the admin endpoint's management routes: validation, AMQPLAIN, deleting a vhost."""

from __future__ import annotations

import asyncio

import aiohttp
import aiormq
import pytest
from pamqp import encode

from labkit.broker import Broker
from labkit.broker.admin import AdminServer
from labkit.broker.auth import Auth, Permission


def test_permission_regexes_and_bad_input():
    p = Permission(r"^l\.ana\..*$", r"^class\.in$", "")
    assert p.allows("configure", "l.ana.x") and not p.allows("configure", "l.bob.x")
    assert not p.allows("read", "anything")  # '' allows nothing, as in RabbitMQ
    with pytest.raises(ValueError, match="write is not a valid regular expression"):
        Permission(".*", "(", ".*")
    auth = Auth("guest", "guest", make_vhost=lambda name: name)
    with pytest.raises(KeyError, match="no vhost 'nope'"):
        auth.set_permissions("nope", "guest", ".*", ".*", ".*")
    with pytest.raises(ValueError, match="limit must be one of"):
        auth.set_user_limit("guest", "max-queues", 3)
    with pytest.raises(ValueError, match="password must be"):
        auth.add_user("x", "")


def test_amqplain_and_plain_logins():
    auth = Auth("ana", "s3cret", make_vhost=lambda name: name)
    table = encode.field_table({"LOGIN": "ana", "PASSWORD": "s3cret"})[4:]  # AMQPLAIN: no length prefix
    assert auth.authenticate("AMQPLAIN", table) == "ana"
    assert auth.authenticate("PLAIN", b"\x00ana\x00s3cret") == "ana"
    assert auth.authenticate("PLAIN", b"\x00ana\x00wrong") is None
    assert auth.authenticate("AMQPLAIN", b"\xff\x00garbage") is None
    assert auth.authenticate("EXTERNAL", b"") is None


@pytest.mark.filterwarnings("ignore")
async def test_management_routes_and_deleting_a_vhost_closes_its_connections():
    broker = await Broker().start()
    admin = AdminServer(broker)
    await admin.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def call(method, path, body=None):
                async with http.request(method, admin.url + path, json=body) as r:
                    return r.status, await r.text()

            assert (await call("PUT", "api/vhosts/class%2Fa", {}))[0] == 204
            assert (await call("PUT", "api/users/ana", {"password": "pw"}))[0] == 204
            perms = {"configure": ".*", "write": ".*", "read": ".*"}
            assert (await call("PUT", "api/permissions/class%2Fa/ana", perms))[0] == 204
            assert (await call("PUT", "api/permissions/class%2Fa/bob", perms))[0] == 404
            assert (await call("PUT", "api/users/bob", {"password": ""}))[0] == 400
            assert (await call("POST", "api/vhosts/x"))[0] == 405
            conn = await aiormq.connect(broker.url.replace("guest:guest", "ana:pw").rstrip("/") + "/class%2Fa")
            channel = await conn.channel()
            await channel.queue_declare("q", durable=True)
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="in vhost 'class/a'"):
                await channel.queue_declare("missing", passive=True)
            assert "q" not in broker.vhost.queues  # the class's queue lives in its own vhost
            assert (await call("DELETE", "api/vhosts/class%2Fa"))[0] == 204
            with pytest.raises(aiormq.exceptions.ConnectionClosed, match="vhost 'class/a' is deleted"):
                await asyncio.wait_for(conn.closing, 5)  # RabbitMQ 3.10.8's text, verified
    finally:
        await admin.stop()
        await broker.stop()
