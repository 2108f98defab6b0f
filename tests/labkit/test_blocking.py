"""labkit.blocking: a blocking call stalls the loop's ticker, the same call in a worker thread does not."""

import asyncio
import time

import pytest
from aiohttp import web

from labkit.blocking import as_series, blocking_post, ticker_figure, ticks_while


async def test_blocking_post_gets_the_answer_from_a_real_server_when_called_from_a_thread():
    app = web.Application()
    app.router.add_post("/", lambda request: web.Response(body=b"paid"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await asyncio.to_thread(blocking_post, f"http://127.0.0.1:{port}/", 5.0) == b"paid"
    finally:
        await runner.cleanup()


async def test_a_blocking_sleep_on_the_loop_is_one_long_tick_and_an_awaited_one_is_not():
    async def block():
        time.sleep(0.2)  # noqa: ASYNC251 -- blocking the loop is what this test measures
        return "blocked"

    async def wait():
        await asyncio.sleep(0.2)
        return "waited"

    blocked, ticks_blocked = await ticks_while(block, settle=0.05)
    waited, ticks_waited = await ticks_while(wait, settle=0.05)
    assert (blocked, waited) == ("blocked", "waited")
    assert max(gap for _, gap in ticks_blocked) >= 0.2
    assert max(gap for _, gap in ticks_blocked) > 2 * max(gap for _, gap in ticks_waited)
    assert min(t for t, _ in ticks_blocked) < 0 < max(t for t, _ in ticks_blocked), "ticks on both sides"


async def test_the_ticker_is_cancelled_even_when_the_work_raises():
    async def fail():
        raise RuntimeError("boom")

    before = len(asyncio.all_tasks())
    with pytest.raises(RuntimeError, match="boom"):
        await ticks_while(fail, settle=0.01)
    assert len(asyncio.all_tasks()) == before


def test_as_series_starts_each_tick_where_it_began_in_ms_and_the_figure_has_one_trace_per_run():
    ticks = [(0.01, 0.01), (0.5, 0.49)]
    starts, lengths = as_series(ticks)
    assert starts == pytest.approx([0.0, 0.01]) and lengths == pytest.approx([10.0, 490.0])
    fig = ticker_figure({"on the loop": ticks, "in a thread": ticks[:1]})
    assert [trace.name for trace in fig.data] == ["on the loop", "in a thread"]
