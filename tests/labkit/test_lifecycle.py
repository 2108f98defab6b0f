"""labkit.lifecycle: the Component protocol, the two bases, wait_until, unique and lab.start(part)."""

import asyncio

import aiohttp
import aiormq
import pytest
from aiohttp import web
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from labkit import Lab
from labkit.lifecycle import (
    AmqpWorker,
    Component,
    HttpApp,
    Part,
    delivery_tag,
    started,
    stopped_on_failure,
    unique,
    wait_until,
)


class Hello(HttpApp):
    def __init__(self) -> None:
        super().__init__(name="hello")
        self.stopped = False

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.hi)

    async def hi(self, request: web.Request) -> web.Response:
        return web.Response(text="hi")

    async def on_stop(self) -> None:
        self.stopped = True


class Echo(AmqpWorker):
    """Declares a per-run queue, consumes it and counts deliveries."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, name="echo", prefetch=5)
        self.queue, self.seen = queue, []

    async def declare(self, channel):
        await channel.queue_declare(self.queue, exclusive=True)

    def subscriptions(self):
        return [(self.queue, None)]

    async def handle(self, message):
        self.seen.append(bytes(message.body))
        await message.channel.basic_ack(message.delivery.delivery_tag)


async def test_wait_until_returns_the_truthy_value():
    box = []
    asyncio.get_running_loop().call_later(0.05, box.append, 7)
    assert await wait_until(lambda: box and box[0], timeout=5) == 7


async def test_wait_until_accepts_an_async_predicate():
    async def ready():
        return "yes"

    assert await wait_until(ready, timeout=1) == "yes"


async def test_wait_until_names_what_it_waited_for():
    with pytest.raises(TimeoutError, match=r"gave up after 0.05 s waiting for 3 of 5 acks"):
        await wait_until(lambda: False, timeout=0.05, what=lambda: "3 of 5 acks")
    with pytest.raises(TimeoutError, match="waiting for the broker"):
        await wait_until(lambda: False, timeout=0.02, what="the broker")


@pytest.mark.parametrize(
    "kwargs, name", [({"timeout": 0}, "timeout"), ({"timeout": -1}, "timeout"), ({"interval": 0}, "interval")]
)
async def test_wait_until_rejects_bad_bounds(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        await wait_until(lambda: True, **kwargs)


def test_started_returns_the_resource_or_says_the_part_is_not_running():
    channel = object()
    assert started(channel, "the classroom") is channel
    with pytest.raises(RuntimeError, match="the classroom is not running"):
        started(None, "the classroom")


def test_delivery_tag_of_a_delivery_and_of_a_get_empty():
    header = ContentHeader(0, 0)
    deliver = DeliveredMessage(Basic.Deliver("ctag", 7), header, b"", None)  # no channel needed to read the tag
    assert delivery_tag(deliver) == 7
    empty = DeliveredMessage(Basic.GetEmpty(), header, b"", None)  # no channel needed to read the tag
    with pytest.raises(ValueError, match="no delivery tag: it came with GetEmpty"):
        delivery_tag(empty)


def test_unique_names_differ_and_keep_the_prefix():
    names = {unique("orders") for _ in range(100)}
    assert len(names) == 100 and all(n.startswith("orders-") for n in names)
    with pytest.raises(ValueError, match="prefix"):
        unique("")


async def test_http_app_serves_stops_and_is_a_component():
    app = Hello()
    assert isinstance(app, Component) and not app.running
    async with app:
        assert app.running
        with pytest.raises(RuntimeError, match="already running"):
            await app.start()
        async with aiohttp.ClientSession() as session, session.get(app.url) as resp:
            assert await resp.text() == "hi"
        port = app.port
    assert app.stopped and not app.running
    with pytest.raises(RuntimeError, match="not running"):
        app.port  # noqa: B018
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/")
    await app.stop()  # twice is harmless


async def test_amqp_worker_declares_consumes_and_closes(amqp_url, unique):
    worker = Echo(amqp_url, unique("echo"))
    async with worker:
        assert worker.running
        for i in range(3):
            await worker.send(str(i).encode(), routing_key=worker.queue)
        await wait_until(lambda: len(worker.seen) == 3, timeout=10, what=lambda: f"3 deliveries, {worker.seen}")
    assert worker.seen == [b"0", b"1", b"2"] and not worker.running
    with pytest.raises(RuntimeError, match="not connected"):
        await worker.send(b"x", routing_key=worker.queue)


async def test_amqp_worker_that_fails_to_start_leaves_nothing_open(amqp_url, unique):
    class Broken(Echo):
        def subscriptions(self):
            return [(unique("missing"), None)]  # consuming a queue that does not exist: 404

    worker = Broken(amqp_url, unique("echo"))
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await worker.start()
    assert not worker.running and worker._connection is None


class _TwoSteps(Part):
    """A part whose start opens one thing, then fails (or is cancelled) at the second."""

    name = "two steps"

    def __init__(self, second: BaseException):
        self.second = second
        self.opened: list[str] = []

    @property
    def running(self) -> bool:
        return bool(self.opened)

    async def start(self):
        self._check_stopped()
        async with stopped_on_failure(self):
            self.opened.append("first")
            raise self.second
        return self

    async def stop(self) -> None:
        self.opened.clear()


@pytest.mark.parametrize("second", [OSError("port taken"), asyncio.CancelledError()])
async def test_a_start_that_fails_half_way_stops_what_it_opened_and_reraises(second):
    part = _TwoSteps(second)
    with pytest.raises(type(second)):
        await part.start()
    assert part.opened == [] and not part.running


def test_amqp_worker_checks_its_url():
    with pytest.raises(ValueError, match="amqp_url must start with amqp://"):
        Echo("http://x", "q")


class Counter(Part):
    """The smallest part: what lab.start needs."""

    def __init__(self) -> None:
        self.lab = None
        self.state = "new"

    @property
    def running(self) -> bool:
        return self.state == "running"

    def attach(self, lab):
        self.lab = lab

    async def start(self):
        self.state = "running"
        return self

    async def stop(self):
        self.state = "stopped"


async def test_lab_start_attaches_starts_and_stops_a_part(http_lab):
    part = await http_lab.start(Counter())
    assert part.running and part.lab is http_lab
    with pytest.raises(ValueError, match="already attached"):
        await http_lab.start(part)
    await http_lab.stop()
    assert part.state == "stopped"


async def test_lab_start_rejects_what_is_not_a_part(http_lab):
    with pytest.raises(ValueError, match="part must have async start"):
        await http_lab.start(object())


async def test_lab_start_on_a_stopped_lab_says_so():
    lab = Lab(amqp=False)
    with pytest.raises(RuntimeError, match="not running"):
        await lab.start_part(Counter())


async def test_lab_itself_is_a_component():
    lab = await Lab(amqp=False).start()
    try:
        assert lab.running and isinstance(lab, Component)
        assert lab.unique("q").startswith("q-")
    finally:
        await lab.stop()
    assert not lab.running
