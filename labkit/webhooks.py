"""Webhooks: the provider calls you back, signed, retried, and deduplicated by the receiver.

Why: the fourth way for two services to talk, between a call and a message. The caller does not wait
(like a message), but there is no broker: the *provider* keeps the event and retries the HTTP call
until the receiver takes it, so the provider is the queue. What makes that safe is the same as with a
broker, done by hand on both sides:

- the sender signs every delivery (HMAC-SHA256 over a timestamp and the body, as Stripe and GitHub do)
  and retries failed ones with capped exponential backoff and full jitter (:func:`labkit.theory.backoff_schedule`);
- the receiver checks the signature and the timestamp (a forged or replayed call gets 401), remembers
  each event id (a retry of an event it already took gets 200 and is not processed again), and answers
  *before* it does the work (202), so a slow handler never makes the sender time out and retry.

:class:`JobService` is the other half of the comparison: a slow job behind ``202 Accepted`` and a
status resource, which a client can poll (:func:`poll_job`) or ask to call back when done.

    receiver = await lab.start(Receiver(SECRET, work_time=0.02))
    sender = await lab.start(Sender(SECRET, base=0.05, cap=0.8))
    sender.send(receiver.url + "webhook", {"id": "evt-1", "type": "order.paid", "data": {}})
    await sender.wait_delivered(["evt-1"], timeout=10)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from labkit._validate import non_negative, positive
from labkit.lifecycle import HttpApp, Part, wait_until
from labkit.theory import backoff_schedule

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SIGNATURE_HEADER", "sign", "verify", "Receiver", "Sender", "Delivery", "JobService", "poll_job"]

#: The header that carries ``t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
SIGNATURE_HEADER = "X-Webhook-Signature"


def _secret(secret: Any) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise ValueError(f"secret must be a non-empty str or bytes, got {secret!r}")
    return secret


def _mac(secret: bytes, stamp: int, body: bytes) -> str:
    return hmac.new(secret, b"%d." % stamp + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, now: float | None = None) -> str:
    """The signature header's value for ``body`` sent at ``now`` (unix seconds; the clock by default).

    The timestamp is inside the MAC, so a captured delivery cannot be replayed later with a new time.
    """
    if not isinstance(body, bytes):
        raise ValueError(f"body must be bytes, got {type(body).__name__}")
    stamp = int(1000 * (time.time() if now is None else now))
    return f"t={stamp},v1={_mac(_secret(secret), stamp, body)}"


def verify(
    secret: str | bytes, header: str | None, body: bytes, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """Is ``header`` a valid signature of ``body``, made at most ``tolerance`` seconds from ``now``?

    Compares in constant time (``hmac.compare_digest``): a receiver that compares strings byte by byte
    tells an attacker, by its timing, how much of a guessed signature was right.
    """
    positive("tolerance", tolerance)
    try:
        fields = dict(part.split("=", 1) for part in (header or "").split(","))
        stamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    now = time.time() if now is None else now
    if abs(now - stamp / 1000) > tolerance:
        return False
    return hmac.compare_digest(given, _mac(_secret(secret), stamp, body))


class Receiver(HttpApp):
    """A webhook endpoint (``POST /webhook``) that verifies, deduplicates, answers at once, works later.

    ``work_time`` is the processing per event, done by one background task after the answer. Counters:
    ``requests``, ``rejected`` (bad signature), ``duplicates``; ``processed`` maps event id to the
    ``time.monotonic()`` when its work finished.
    """

    def __init__(self, secret: str | bytes, *, work_time: float = 0.0, name: str = "webhook receiver", port: int = 0):
        super().__init__(name=name, port=port)
        self.secret = _secret(secret)
        self.work_time = non_negative("work_time", work_time)
        self.requests = self.rejected = self.duplicates = 0
        self.processed: dict[str, float] = {}
        self._seen: set[str] = set()
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhook", self._take)

    async def on_start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def on_stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _take(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if not verify(self.secret, request.headers.get(SIGNATURE_HEADER), body):
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        event = json.loads(body)
        if event["id"] in self._seen:  # a retry of an event already taken: acknowledge, do nothing
            self.duplicates += 1
            return web.json_response({"duplicate": True}, status=200)
        self._seen.add(event["id"])
        self._inbox.put_nowait(event)
        return web.json_response({"accepted": event["id"]}, status=202)

    async def _work(self) -> None:
        while True:
            event = await self._inbox.get()
            await asyncio.sleep(self.work_time)
            self.processed[event["id"]] = time.monotonic()


@dataclass
class Delivery:
    """One event's delivery: when it was sent, each attempt ``(monotonic time, status or error)``, and
    when a 2xx answer ended it (None while it has not)."""

    event_id: str
    sent_at: float
    attempts: list[tuple[float, str]] = field(default_factory=list)
    delivered_at: float | None = None


class Sender(Part):
    """A webhook provider: signs each event and retries it until a 2xx, with capped, jittered backoff.

    ``base`` and ``cap`` (s) shape the backoff (full jitter, seeded by ``seed``), ``attempts`` bounds
    the retries, ``timeout`` (s) bounds each attempt. ``deliveries`` maps event id to its
    :class:`Delivery`.
    """

    name = "webhook sender"

    def __init__(
        self,
        secret: str | bytes,
        *,
        base: float = 0.05,
        cap: float = 1.0,
        attempts: int = 20,
        timeout: float = 1.0,
        seed: int = 0,
    ):
        self.secret = _secret(secret)
        self.base, self.cap = positive("base", base), positive("cap", cap)
        self.timeout = positive("timeout", timeout)
        self.attempts, self.seed = attempts, seed
        backoff_schedule("full_jitter", base, cap, attempts, seed)  # checks attempts the same way
        self.deliveries: dict[str, Delivery] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def running(self) -> bool:
        return self._session is not None

    async def start(self) -> Self:
        self._check_stopped()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def stop(self) -> None:
        session, self._session = self._session, None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if session is not None:
            await session.close()

    def send(self, url: str, event: dict, *, secret: str | bytes | None = None) -> Delivery:
        """Start delivering ``event`` (a dict with an ``"id"``) to ``url`` in the background.

        ``secret`` overrides the signing secret (to show what a receiver does with a forged call).
        """
        if self._session is None:
            raise RuntimeError("the sender is not running: await lab.start(sender) first")
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise ValueError(f"event must be a dict with a str 'id', got {event!r}")
        delivery = self.deliveries[event["id"]] = Delivery(event["id"], time.monotonic())
        task = asyncio.get_running_loop().create_task(
            self._deliver(url, json.dumps(event).encode(), delivery, _secret(secret or self.secret))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery

    async def _deliver(self, url: str, body: bytes, delivery: Delivery, secret: bytes) -> None:
        # each event draws its own jitter, reproducibly for a given seed (str hashes are salted per process)
        seed = None if self.seed is None else zlib.crc32(f"{self.seed}:{delivery.event_id}".encode())
        delays = backoff_schedule("full_jitter", self.base, self.cap, self.attempts, seed) + [None]
        for delay in delays:
            outcome = await self._attempt(url, body, secret)
            delivery.attempts.append((time.monotonic(), outcome))
            if outcome.startswith("2"):
                delivery.delivered_at = delivery.attempts[-1][0]
                return
            if outcome == "401" or delay is None:  # a refused signature will not get better by retrying
                return
            await asyncio.sleep(delay)

    async def _attempt(self, url: str, body: bytes, secret: bytes) -> str:
        assert self._session is not None
        headers = {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                return str(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return type(error).__name__

    async def wait_delivered(self, event_ids: list[str], timeout: float = 10.0) -> None:
        """Wait until every one of ``event_ids`` was delivered (TimeoutError naming how many were not)."""
        await wait_until(
            lambda: all(self.deliveries[e].delivered_at is not None for e in event_ids),
            timeout=timeout,
            what=f"{len(event_ids)} webhook deliveries",
        )


class JobService(HttpApp):
    """A slow job behind ``202 Accepted``: ``POST /jobs`` starts one (``{"callback": url}`` to be called
    back when it is done), ``GET /jobs/<id>`` answers its status. ``job_time`` (s) is each job's length;
    ``status_requests`` counts the GETs; ``done`` maps job id to when it finished (``time.monotonic()``).
    """

    def __init__(self, *, job_time: float, sender: Sender | None = None, name: str = "job service", port: int = 0):
        super().__init__(name=name, port=port)
        self.job_time = positive("job_time", job_time)
        self.sender = sender
        self.status_requests = 0
        self.done: dict[str, float] = {}
        self._timers: list[asyncio.TimerHandle] = []

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/jobs", self._create)
        router.add_get("/jobs/{id}", self._status)

    async def on_stop(self) -> None:
        for timer in self._timers:
            timer.cancel()

    async def _create(self, request: web.Request) -> web.Response:
        options = await request.json() if request.can_read_body else {}
        job = uuid.uuid4().hex[:12]
        self._timers.append(
            asyncio.get_running_loop().call_later(self.job_time, self._finish, job, options.get("callback"))
        )
        return web.json_response({"id": job, "status": f"/jobs/{job}"}, status=202)

    def _finish(self, job: str, callback: str | None) -> None:
        self.done[job] = time.monotonic()
        if callback and self.sender is not None:
            self.sender.send(callback, {"id": f"job-{job}", "type": "job.done", "data": {"job": job}})

    async def _status(self, request: web.Request) -> web.Response:
        self.status_requests += 1
        job = request.match_info["id"]
        return web.json_response({"id": job, "status": "done" if job in self.done else "pending"})


async def poll_job(status_url: str, *, interval: float, timeout: float = 30.0) -> tuple[int, float]:
    """Ask ``status_url`` every ``interval`` seconds until the job is done: (requests made, monotonic
    time the client knew)."""
    positive("interval", interval)
    deadline = time.monotonic() + positive("timeout", timeout)
    requests = 0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(status_url) as response:
                requests += 1
                if (await response.json())["status"] == "done":
                    return requests, time.monotonic()
            await asyncio.sleep(interval)
    raise TimeoutError(f"the job at {status_url} was not done after {timeout} s of polling")
