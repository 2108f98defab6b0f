"""What survives a kill -9: the embedded broker against a real RabbitMQ node, same client code.

Why: the shared RabbitMQ on 127.0.0.1:5672 cannot be killed from a test, so the conformance suite
cannot check durability. This test starts a throwaway RabbitMQ node of its own (rabbitmq-server from
the system, on 127.0.0.1:5699 with its own data directory), kills it with SIGKILL, restarts it, and
records what a client sees; then does the same to the embedded broker and compares the two records.
Opt-in (it starts and kills RabbitMQ twice, ~30 s): LABKIT_RABBITMQ_NODE=1. Observed on RabbitMQ 3.10.8.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import aiormq
import pytest
from pamqp import commands

from labkit.broker.process import BrokerProcess

SERVER = shutil.which("rabbitmq-server") and "/usr/lib/rabbitmq/bin/rabbitmq-server"
pytestmark = [
    pytest.mark.skipif(
        os.environ.get("LABKIT_RABBITMQ_NODE") != "1",
        reason="opt-in: LABKIT_RABBITMQ_NODE=1 starts and kills a private RabbitMQ node",
    ),
    pytest.mark.skipif(not SERVER or not os.path.exists(SERVER), reason="rabbitmq-server is not installed"),
    pytest.mark.timeout(180),
]
PORT = 5699
PERSISTENT = commands.Basic.Properties(delivery_mode=2)
TRANSIENT = commands.Basic.Properties(delivery_mode=1)


class RabbitNode:
    """A private RabbitMQ node: started, SIGKILLed and restarted on its own port and directory."""

    def __init__(self, base: str) -> None:
        self.base = base
        with open(os.path.join(base, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{PORT}\nloopback_users = none\n")
        with open(os.path.join(base, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.env = {
            **os.environ,
            "HOME": base,
            "RABBITMQ_NODENAME": f"labkit{os.getpid()}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(PORT),
            "RABBITMQ_DIST_PORT": str(PORT + 20000),
            "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
            "RABBITMQ_LOG_BASE": f"{base}/log",
            "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{base}/pid",
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{PORT}/"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [SERVER], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                return
            except OSError:
                await asyncio.sleep(0.5)
        raise RuntimeError("the private RabbitMQ node did not start within 90 s")

    async def crash(self) -> None:
        with open(self.env["RABBITMQ_PID_FILE"]) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)  # beam.smp
        self.proc.wait(30)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            await self.crash()


async def before(url: str) -> aiormq.Connection:
    """Durable and transient things, one delivered message held unacked; returns the open connection."""
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    await channel.queue_declare("c-durable", durable=True)
    await channel.queue_declare("c-transient", durable=False, exclusive=False)
    await channel.queue_declare("c-held", durable=True)
    await channel.exchange_declare("c-dx", exchange_type="direct", durable=True)
    await channel.exchange_declare("c-tx", exchange_type="direct", durable=False)
    await channel.queue_bind("c-durable", "c-dx", routing_key="k")
    await channel.queue_bind("c-transient", "c-dx", routing_key="t")
    await channel.basic_publish(b"persistent", routing_key="c-durable", properties=PERSISTENT)
    await channel.basic_publish(b"transient", routing_key="c-durable", properties=TRANSIENT)
    await channel.basic_publish(b"persistent", routing_key="c-transient", properties=PERSISTENT)
    await channel.basic_publish(b"held", routing_key="c-held", properties=PERSISTENT)
    await channel.basic_get("c-held", no_ack=False)
    return connection


async def after(url: str) -> dict:
    """What a client finds after the restart."""
    connection = await aiormq.connect(url)
    seen: dict = {}
    try:
        channel = await connection.channel()
        for queue in ("c-durable", "c-transient", "c-held"):
            try:
                await channel.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                seen[queue] = "gone"
                channel = await connection.channel()
                continue
            got = []
            while not isinstance((m := await channel.basic_get(queue, no_ack=True)).delivery, commands.Basic.GetEmpty):
                got.append((m.body, m.delivery.redelivered))
            seen[queue] = got
        for exchange in ("c-dx", "c-tx"):
            try:
                await channel.exchange_declare(exchange, passive=True)
                seen[exchange] = "kept"
            except aiormq.exceptions.ChannelNotFoundEntity:
                seen[exchange] = "gone"
                channel = await connection.channel()
        await channel.basic_publish(b"routed", exchange="c-dx", routing_key="k")
        seen["binding"] = (await channel.basic_get("c-durable", no_ack=True)).body
        for queue in ("c-durable", "c-held"):
            await channel.queue_delete(queue)
        await channel.exchange_delete("c-dx")
    finally:
        await connection.close()
    return seen


async def record(broker) -> dict:
    await broker.start()
    connection = await before(broker.url)
    await broker.crash()
    try:
        await connection.closing
        seen_by_client = "closed"
    except aiormq.exceptions.AMQPConnectionError as exc:
        seen_by_client = "reset" if "reset" in str(exc) else str(exc)
    await broker.start()
    return {"client": seen_by_client, **await after(broker.url)}


class EmbeddedNode:
    def __init__(self, base: str) -> None:
        self.base, self.process, self.url = base, None, ""

    async def start(self) -> None:
        if self.process is None:
            self.process = await BrokerProcess.start(data_dir=self.base, rabbitmq="3.10")
        else:
            await self.process.restart()
        self.url = self.process.url

    async def crash(self) -> None:
        await self.process.crash()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


async def test_kill_9_leaves_the_same_things_on_both_brokers():
    records = {}
    for name, kind in (("rabbitmq", RabbitNode), ("embedded", EmbeddedNode)):
        with tempfile.TemporaryDirectory(prefix=f"labkit-{name}-") as base:
            node = kind(base)
            try:
                records[name] = await record(node)
            finally:
                await node.stop()
    assert records["rabbitmq"] == {  # observed on RabbitMQ 3.10.8
        "client": "reset",
        "c-durable": [(b"persistent", True)],
        "c-transient": "gone",
        "c-held": [(b"held", True)],
        "c-dx": "kept",
        "c-tx": "gone",
        "binding": b"routed",
    }
    assert records["embedded"] == records["rabbitmq"]
