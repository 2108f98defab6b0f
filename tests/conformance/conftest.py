"""Fixtures that run every conformance test against each broker under test.

Why: the embedded broker is only useful to the course if it behaves like RabbitMQ for everything the
chapters show. So each test runs against the embedded broker always and, when ``AMQP_URL`` is set,
against that RabbitMQ too, with the same assertions. The embedded broker starts per test inside the
test's event loop (it is cheap, and a fresh broker means no test sees another test's state).

Profiles: most behaviour is the same on RabbitMQ 3.10 and 4.3, and those tests run once on the embedded
broker's default profile. A test marked ``@pytest.mark.profiles`` asserts something that differs by
release: it runs on the embedded broker in each profile ("embedded-4.3", "embedded-3.10") and reads the
``profile`` fixture for its expectations; on a RabbitMQ the profile is derived from the version the
server announces (3.x -> "3.10", 4.3 and later -> "4.3").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .support import Client

AMQP_URL = os.environ.get("AMQP_URL")
BROKERS = ["embedded"] + (["rabbitmq"] if AMQP_URL else [])
PROFILED = ["embedded-4.3", "embedded-3.10"] + (["rabbitmq"] if AMQP_URL else [])
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "profiles: the test runs on the embedded broker in every RabbitMQ profile")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" in metafunc.fixturenames:
        kinds = PROFILED if metafunc.definition.get_closest_marker("profiles") else BROKERS
        metafunc.parametrize("broker_kind", kinds, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A conformance test that hangs is a broker bug: fail it in seconds, not after the global timeout."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(30))


def embedded_broker_class():
    """labkit.broker.Broker, or skip while the embedded broker has not landed yet."""
    try:
        from labkit import broker
    except ModuleNotFoundError as exc:
        if exc.name != "labkit.broker":
            raise
        pytest.skip("labkit.broker does not exist yet")
    if not hasattr(broker, "Broker"):
        pytest.skip("labkit.broker has no Broker yet")
    return broker.Broker


@pytest.fixture
async def embedded_broker():
    """Start embedded brokers with given options; all of them stop when the test ends."""
    started = []

    async def start(**options):
        broker = embedded_broker_class()(host="127.0.0.1", port=0, **options)
        await broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        await broker.stop()


@pytest.fixture
def broker_kind(request) -> str:
    """ "embedded", "embedded-4.3", "embedded-3.10" or "rabbitmq": which broker this run talks to."""
    return request.param


def _profile_option(broker_kind: str) -> dict:
    """Broker options selecting the profile of a profiled embedded run (none: the default profile)."""
    return {"rabbitmq": broker_kind.split("-", 1)[1]} if broker_kind.startswith("embedded-") else {}


@pytest.fixture
async def broker_url(broker_kind, embedded_broker) -> str:
    """The AMQP URL of the broker under test."""
    if broker_kind == "rabbitmq":
        return AMQP_URL
    return (await embedded_broker(**_profile_option(broker_kind))).url


@pytest.fixture
async def profile(broker_kind, client) -> str:
    """The RabbitMQ release whose behaviour this run expects: "4.3" or "3.10"."""
    connection = await client.connect()
    version = str(connection.server_properties.get("version", ""))
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        pytest.fail(f"the broker announces no usable version: {version!r}")
    if major == 3:
        return "3.10"
    if (major, minor) >= (4, 3):
        return "4.3"
    pytest.skip(f"no profile for RabbitMQ {version}: the embedded broker has 3.10 and 4.3")


@pytest.fixture
def reconfigure(broker_kind, embedded_broker, client):
    """Point ``client`` at a fresh embedded broker started with non-default options.

    ``await reconfigure(reason, **options)`` returns that broker; on RabbitMQ it skips the test with
    ``reason`` (its configuration cannot be changed from a test).
    """

    async def apply(reason: str, **options):
        if broker_kind == "rabbitmq":
            pytest.skip(reason)
        broker = await embedded_broker(**{**_profile_option(broker_kind), **options})
        client.url = broker.url
        return broker

    return apply


@pytest.fixture
async def client(broker_url, broker_kind):
    """A Client on the broker under test; closes its connections and cleans up its names."""
    client = Client(broker_url, broker_kind)
    yield client
    await client.close()
