"""Webhooks over real sockets: signatures, retries through an outage, deduplication, polling vs callback."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from labkit.faults import FaultProxy
from labkit.lifecycle import wait_until
from labkit.webhooks import SIGNATURE_HEADER, JobService, Receiver, Sender, poll_job, sign, verify

SECRET = "whsec-test"


def test_a_signature_verifies_only_for_its_body_secret_and_time():
    body = b'{"id": "evt-1"}'
    header = sign(SECRET, body, now=1000.0)
    assert verify(SECRET, header, body, now=1000.5)
    assert not verify(SECRET, header, body + b" ", now=1000.5)  # body changed
    assert not verify("other", header, body, now=1000.5)  # wrong secret
    assert not verify(SECRET, header, body, now=1000.0 + 301)  # replayed too late
    assert not verify(SECRET, "garbage", body) and not verify(SECRET, None, body)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="secret must be a non-empty"):
        sign("", b"x")
    with pytest.raises(ValueError, match="body must be bytes"):
        sign(SECRET, "text")
    with pytest.raises(ValueError, match="work_time must be"):
        Receiver(SECRET, work_time=-1)
    with pytest.raises(ValueError, match="base must be"):
        Sender(SECRET, base=0)


async def test_retries_through_an_outage_deliver_every_event_once():
    async with (
        Receiver(SECRET, work_time=0.001) as receiver,
        FaultProxy("127.0.0.1", receiver.port, "receiver link") as link,
        Sender(SECRET, base=0.02, cap=0.2, timeout=0.5) as sender,
    ):
        url = f"{link.url}/webhook"
        link.down()
        events = [f"evt-{i}" for i in range(5)]
        for e in events:
            sender.send(url, {"id": e, "type": "t", "data": {}})
        await wait_until(
            lambda: all(len(sender.deliveries[e].attempts) >= 2 for e in events), timeout=10, what="two tries each"
        )
        assert not receiver.processed  # nothing gets through the outage
        link.up()
        await sender.wait_delivered(events, timeout=10)
        sender.send(url, {"id": "evt-0", "type": "t", "data": {}})  # the provider sends one again
        await sender.wait_delivered(["evt-0"], timeout=10)
        # the receiver answers first and works after: wait for the work, then check it was done once each
        await wait_until(lambda: len(receiver.processed) >= len(events), timeout=10, what="every event worked")
        assert sorted(receiver.processed) == events and receiver.duplicates == 1


async def test_a_forged_delivery_is_refused_and_not_retried():
    async with Receiver(SECRET) as receiver, Sender(SECRET, base=0.01) as sender:
        forged = sender.send(receiver.url + "webhook", {"id": "evt-x", "type": "t", "data": {}}, secret="guess")
        await wait_until(lambda: forged.attempts, timeout=10, what="the forged delivery's first try")
        await asyncio.sleep(0.2)  # room for a retry, which must not come
        assert [o for _, o in forged.attempts] == ["401"] and receiver.rejected == 1 and not receiver.processed


async def test_the_receiver_answers_before_it_works():
    async with Receiver(SECRET, work_time=0.3) as receiver, aiohttp.ClientSession() as session:
        body = json.dumps({"id": "evt-slow", "type": "t", "data": {}}).encode()
        async with session.post(
            receiver.url + "webhook", data=body, headers={SIGNATURE_HEADER: sign(SECRET, body)}
        ) as r:
            assert r.status == 202
        assert "evt-slow" not in receiver.processed  # answered while the 0.3 s of work was still to come
        await wait_until(lambda: "evt-slow" in receiver.processed, timeout=10, what="the work after the answer")


async def test_polling_makes_requests_a_callback_does_not():
    async with (
        Receiver(SECRET) as receiver,
        Sender(SECRET, base=0.01) as sender,
        JobService(job_time=0.3, sender=sender) as jobs,
        aiohttp.ClientSession() as session,
    ):
        async with session.post(jobs.url + "jobs", json={}) as r:
            polled = await r.json()
        requests, _ = await poll_job(jobs.url.rstrip("/") + polled["status"], interval=0.05)
        assert requests >= 5 and jobs.status_requests == requests
        async with session.post(jobs.url + "jobs", json={"callback": receiver.url + "webhook"}) as r:
            called = await r.json()
        await asyncio.sleep(0.45)
        assert f"job-{called['id']}" in receiver.processed and jobs.status_requests == requests
