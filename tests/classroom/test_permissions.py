"""The embedded broker refuses what RabbitMQ refuses, with the same codes and texts (run on both)."""

from __future__ import annotations

import os
import secrets
import shutil

import aiormq
import pytest

from labkit.broker import Broker
from labkit.broker.admin import AdminServer
from labkit.classroom.provision import ManagementAPI, Rabbitmqctl

from .conftest import MANAGEMENT_URL, RABBITMQ_URL, rabbitmq_or_skip

PERMS = {"configure": r"^u\..*", "write": r"^(u\..*|xw)$", "read": r"^(u\..*|xr|qr)$"}


def refused(kind: str, name: str, vhost: str, user: str) -> str:
    return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"


# (operation, what RabbitMQ 3.10.8 answered: None = allowed, else (kind, name) refused)
CASES = [
    ("declare other queue", lambda ch: ch.queue_declare("other", durable=True), ("queue", "other")),
    ("passive declare", lambda ch: ch.queue_declare("other", passive=True), None),
    ("declare own queue", lambda ch: ch.queue_declare("u.a", exclusive=True), None),
    ("purge other", lambda ch: ch.queue_purge("other"), ("queue", "other")),
    ("delete other", lambda ch: ch.queue_delete("other"), ("queue", "other")),
    ("consume other", lambda ch: ch.basic_consume("other", lambda m: None), ("queue", "other")),
    ("consume readable", lambda ch: ch.basic_consume("qr", lambda m: None), None),
    ("get other", lambda ch: ch.basic_get("other"), ("queue", "other")),
    ("publish default", lambda ch: ch.basic_publish(b"x", routing_key="other"), ("exchange", "amq.default")),
    ("publish xn", lambda ch: ch.basic_publish(b"x", exchange="xn"), ("exchange", "xn")),
    ("publish xw", lambda ch: ch.basic_publish(b"x", exchange="xw"), None),
    ("bind other queue", lambda ch: ch.queue_bind("other", "xn"), ("queue", "other")),
    ("declare exchange", lambda ch: ch.exchange_declare("zz", exchange_type="fanout"), ("exchange", "zz")),
    ("declare own exchange", lambda ch: ch.exchange_declare("u.x", exchange_type="fanout"), None),
    ("delete exchange", lambda ch: ch.exchange_delete("xn"), ("exchange", "xn")),
    ("direct reply-to", lambda ch: ch.basic_consume("amq.rabbitmq.reply-to", lambda m: None, no_ack=True), None),
    (
        "dead-letter to xn",
        lambda ch: ch.queue_declare("u.d", exclusive=True, arguments={"x-dead-letter-exchange": "xn"}),
        ("exchange", "xn"),
    ),
]


@pytest.fixture
async def setup(broker_kind):
    """A vhost with queues other/qr and exchanges xw/xr/xn, and user u1 with PERMS there."""
    broker = admin = None
    if broker_kind == "embedded":
        broker = await Broker().start()
        admin = AdminServer(broker)
        await admin.start()
        api, amqp = ManagementAPI(admin.url), broker.url
    else:
        api, amqp = ManagementAPI(MANAGEMENT_URL), RABBITMQ_URL
    vhost, user = f"test-perm-{secrets.token_hex(3)}", f"u-{secrets.token_hex(3)}"
    await api.add_vhost(vhost)
    await api.add_user(user, "pw")
    await api.set_permissions(vhost, user, **PERMS)
    await api.set_permissions(vhost, "guest", ".*", ".*", ".*")
    base = amqp.rsplit("@", 1)[1].rstrip("/")
    conn = await aiormq.connect(f"amqp://guest:guest@{base}/{vhost}")
    ch = await conn.channel()
    for name in ("xw", "xr", "xn"):
        await ch.exchange_declare(name, exchange_type="fanout")
    for name in ("other", "qr"):
        await ch.queue_declare(name, durable=True)
    await conn.close()
    yield f"amqp://{user}:pw@{base}/{vhost}", vhost, user, base
    await api.delete_user(user)
    await api.delete_vhost(vhost)
    await api.close()
    if broker is not None:
        await admin.stop()
        await broker.stop()


async def test_refusals_match_rabbitmq(setup):
    url, vhost, user, _ = setup
    got = {}
    conn = await aiormq.connect(url)
    try:
        for label, operation, _expected in CASES:
            ch = await conn.channel()
            try:
                await operation(ch)
                got[label] = None
            except aiormq.exceptions.ChannelAccessRefused as exc:
                got[label] = exc.args[0]
            if not ch.is_closed:
                await ch.close()
    finally:
        await conn.close()
    expected = {label: None if e is None else refused(*e, vhost, user) for label, _op, e in CASES}
    assert got == expected
    conn = await aiormq.connect(url)
    with pytest.raises(
        aiormq.exceptions.ChannelAccessRefused, match=r"access to queue 'amq\.gen-[\w-]{22}' in vhost"
    ):  # server-named
        await (await conn.channel()).queue_declare("", exclusive=True)
    await conn.close()


async def test_login_and_vhost_refusals(setup):
    _url, vhost, user, base = setup
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError, match="Login was refused"):
        await aiormq.connect(f"amqp://{user}:wrong@{base}/{vhost}")
    for other in ("nope-" + secrets.token_hex(3), ""):  # a missing vhost, and '/' where u1 has no permissions
        with pytest.raises(aiormq.exceptions.AMQPError):
            await aiormq.connect(f"amqp://{user}:pw@{base}/{other}")


async def test_user_channel_limit_closes_only_that_connection():
    broker = await Broker().start()
    try:
        broker.auth.add_user("lim", "pw")
        broker.auth.set_permissions("/", "lim", ".*", ".*", ".*")
        broker.auth.set_user_limit("lim", "max-channels", 3)
        other = await aiormq.connect(broker.url)
        conn = await aiormq.connect(broker.url.replace("guest:guest", "lim:pw"))
        for _ in range(3):
            await conn.channel()
        with pytest.raises(aiormq.exceptions.AMQPError, match="maximum allowed user limit of \\(3\\)"):
            await conn.channel()
        assert conn.is_closed and not other.is_closed
        await (await other.channel()).queue_declare("", exclusive=True)
        await other.close()
    finally:
        await broker.stop()


@pytest.mark.skipif(not os.environ.get("CLASSROOM_FULL"), reason="about 10 s of rabbitmqctl calls: CLASSROOM_FULL=1")
async def test_rabbitmqctl_backend_provisions_the_same_refusals():
    rabbitmq_or_skip()
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        pytest.skip("rabbitmqctl needs to run as root on the broker's host")
    ctl, vhost, user = Rabbitmqctl(), f"test-ctl-{secrets.token_hex(3)}", f"u-{secrets.token_hex(3)}"
    await ctl.add_vhost(vhost)
    try:
        await ctl.add_user(user, "pw with space")  # through stdin, not argv
        await ctl.set_permissions(vhost, user, **PERMS)
        conn = await aiormq.connect(f"amqp://{user}:pw%20with%20space@127.0.0.1:5672/{vhost}")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=refused("queue", "other", vhost, user)):
            await (await conn.channel()).queue_declare("other", durable=True)
        await conn.close()
    finally:
        await ctl.delete_user(user)
        await ctl.delete_vhost(vhost)
