"""Shared fixtures: a running lab per test, and unique AMQP names (several people share one broker)."""

import asyncio
import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from labkit.broker import Broker
from labkit.broker.process import BrokerProcess
from labkit.lab import Lab

# RabbitMQ: AMQP_URL if set, else the local default; its test cases skip when nothing answers there.
RABBITMQ = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(params=["rabbitmq", "embedded"])
async def amqp_url(request):
    """The URL of RabbitMQ and of an embedded broker, in turn: lab parts must work on both the same way."""
    if request.param == "rabbitmq":
        parts = urlsplit(RABBITMQ)
        try:
            socket.create_connection((parts.hostname, parts.port or 5672), timeout=1).close()
        except OSError:
            pytest.skip(f"no RabbitMQ answers at {parts.hostname}:{parts.port or 5672}")
        yield RABBITMQ
    else:
        async with Broker() as broker:
            yield broker.url


@pytest.fixture
def unique():
    """``unique("orders")`` -> "orders-1a2b3c4d": a queue/exchange name no other test run uses."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def http_lab():
    """A lab without a broker (HTTP-only tests start faster)."""
    async with Lab(seed=0, amqp=False) as lab:
        yield lab


@pytest.fixture(scope="session")
def shared_broker_url():
    """One embedded broker process for the whole session (per xdist worker), or AMQP_URL when set.

    Starting a broker process costs about a second of CPU; most tests only need *a* broker, and each uses
    unique queue names, so they share this one. A test about the broker's own lifecycle starts its own."""
    if os.environ.get("AMQP_URL"):
        yield os.environ["AMQP_URL"]
        return
    broker = asyncio.run(BrokerProcess.start())
    try:
        yield broker.url
    finally:
        asyncio.run(broker.stop())


@pytest.fixture
async def lab(shared_broker_url):
    """A full lab on the session's broker (the embedded one, or the one at AMQP_URL when set)."""
    async with Lab(seed=0, amqp_url=shared_broker_url) as lab:
        yield lab
