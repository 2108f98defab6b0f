"""HTTP/1.1 pools and HTTP/2 multiplexing with one slow request; gRPC streaming and deadlines (real sockets)."""

from __future__ import annotations

import asyncio

import pytest

from labkit.multiplexing import WaitServers, call_with_deadline, grpc_burst, http1_burst, ticks

SLOW, FAST = 300, [5] * 7


@pytest.fixture
async def servers():
    async with WaitServers() as s:
        yield s


async def test_one_connection_of_http11_blocks_behind_the_slow_request(servers):
    latencies = await http1_burst(servers.http_url, [SLOW] + FAST, pool=1)
    assert min(latencies[1:]) > 0.5 * SLOW / 1000  # every fast request waited for the slow one
    assert len(servers.http_connections) == 1


async def test_a_pool_or_http2_does_not(servers):
    pooled = await http1_burst(servers.http_url, [SLOW] + FAST, pool=8)
    multiplexed = await grpc_burst(servers.grpc_target, [SLOW] + FAST)
    for latencies in (pooled, multiplexed):
        assert latencies[0] >= SLOW / 1000 and max(latencies[1:]) < 0.5 * SLOW / 1000
    assert len(servers.http_connections) == 8 and len(servers.grpc_connections) == 1


async def test_a_stream_delivers_each_message_when_it_is_made(servers):
    arrivals = await ticks(servers.grpc_target, 4, 100)
    assert len(arrivals) == 4 and arrivals[0] < 0.25 and arrivals[-1] >= 0.4


async def test_a_deadline_fails_the_call_and_cancels_the_servers_work(servers):
    status, took = await call_with_deadline(servers.grpc_target, work_ms=500, deadline_s=0.1)
    assert status == "DEADLINE_EXCEEDED" and took < 0.4
    for _ in range(50):
        if servers.cancelled:
            break
        await asyncio.sleep(0.02)
    assert servers.cancelled == 1
    assert (await call_with_deadline(servers.grpc_target, work_ms=5, deadline_s=1.0))[0] == "OK"


async def test_bad_arguments_are_named(servers):
    with pytest.raises(ValueError, match="delays_ms must be a non-empty list"):
        await http1_burst(servers.http_url, [], pool=1)
    with pytest.raises(ValueError, match="pool"):
        await http1_burst(servers.http_url, [5], pool=0)
    with pytest.raises(ValueError, match="deadline_s"):
        await call_with_deadline(servers.grpc_target, 5, 0)
