"""Shared fixtures: a running lab per test, and unique AMQP names (several people share one broker)."""

import uuid

import pytest

from labkit.lab import Lab


@pytest.fixture
def unique():
    """``unique("orders")`` -> "orders-1a2b3c4d": a queue/exchange name no other test run uses."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def http_lab():
    """A lab without a broker (HTTP-only tests start faster)."""
    async with Lab(seed=0, amqp=False) as lab:
        yield lab


@pytest.fixture
async def lab():
    """A full lab: the embedded broker, or the one at AMQP_URL when set."""
    async with Lab(seed=0) as lab:
        yield lab
