"""BrokerProcess: the broker the lab runs beside the kernel. It must start, report, reset, stop, never
outlive its parent (even one killed with SIGKILL), and keep the kernel's aiormq clients alive while a
notebook cell blocks the kernel's event loop.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import aiormq
import psutil
import pytest

from labkit.broker.process import BrokerProcess

WAIT = 20  # seconds; generous for a loaded 2-core machine


def gone(pid: int, timeout: float = WAIT) -> bool:
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
async def broker():
    bp = await BrokerProcess.start()
    yield bp
    await bp.stop()


async def test_start_reports_urls_and_a_live_pid(broker):
    assert broker.url.startswith("amqp://guest:guest@127.0.0.1:")
    assert broker.admin_url.startswith("http://127.0.0.1:")
    assert broker.returncode is None
    assert psutil.Process(broker.pid).is_running()
    assert str(broker.pid) in repr(broker) and "running" in repr(broker)


async def test_queues_overview_and_reset_go_through_the_admin_api(broker):
    name = f"bp-{uuid.uuid4().hex[:8]}"
    connection = await aiormq.connect(broker.url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(name, durable=True)
        for i in range(5):
            await channel.basic_publish(b"%d" % i, routing_key=name)
        queues = {q["name"]: q for q in await broker.queues()}
        assert queues[name]["messages_ready"] == 5
        overview = await broker.overview()
        assert overview["pid"] == broker.pid and overview["messages_ready"] >= 5
        await broker.reset()
        assert name not in {q["name"] for q in await broker.queues()}
    finally:
        await connection.close()


async def test_stop_terminates_and_reaps_and_is_idempotent():
    bp = await BrokerProcess.start()
    pid = bp.pid
    await bp.stop()
    assert bp.returncode == 0, "SIGTERM is a clean shutdown"
    assert not psutil.pid_exists(pid) or gone(pid, 0.1)
    await bp.stop()
    with pytest.raises(RuntimeError, match="exited"):
        await bp.queues()


async def test_a_dropped_broker_process_is_reaped_by_its_finaliser():
    bp = await BrokerProcess.start()
    pid = bp.pid
    del bp
    gc.collect()
    assert gone(pid)


async def test_it_runs_in_its_own_session_so_a_kernel_interrupt_does_not_reach_it(broker):
    # Jupyter interrupts a kernel by signalling its process group; the broker must not be in it.
    assert os.getsid(broker.pid) != os.getsid(0)
    assert os.getpgid(broker.pid) != os.getpgid(0)


async def test_options_reach_the_broker_and_bad_ones_are_refused_by_name():
    bp = await BrokerProcess.start(frame_max=8192, channel_max=100)
    try:
        connection = await aiormq.connect(bp.url)
        try:
            tune = connection.connection_tune  # what the broker proposed
            assert (tune.frame_max, tune.channel_max) == (8192, 100)
        finally:
            await connection.close()
    finally:
        await bp.stop()
    with pytest.raises(ValueError, match="broker option must be one of"):
        await BrokerProcess.start(no_such_option=1)
    with pytest.raises(ValueError, match="heartbeat must be an integer in"):
        await BrokerProcess.start(heartbeat=-1)  # checked in the kernel, before any child starts
    with pytest.raises(ValueError, match="startup_timeout must be"):
        await BrokerProcess.start(startup_timeout=0)


async def test_a_broker_that_cannot_start_raises_with_its_reason():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(RuntimeError, match=r"exited with status 1 .*labkit.broker:"):
            await BrokerProcess.start(port=holder.getsockname()[1])


def test_the_broker_exits_when_its_parent_is_killed_with_sigkill():
    # No Python runs in a SIGKILLed parent (no finaliser, no atexit): only the stdin pipe's EOF is left.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import asyncio, sys, time
        from labkit.broker.process import BrokerProcess
        bp = asyncio.run(BrokerProcess.start())
        print(bp.pid, flush=True)
        time.sleep(600)
    """),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        child = int(parent.stdout.readline())
        assert psutil.Process(child).is_running()
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        assert gone(child), "the broker outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def _handshake_seconds(url_port: int, result: list) -> None:
    """In a thread: time one AMQP protocol-header -> Connection.Start exchange."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", url_port), timeout=WAIT) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.recv(7)
    result.append(time.monotonic() - t0)


async def test_an_aiormq_client_survives_a_blocked_kernel_loop_and_the_broker_keeps_serving(broker):
    # Scaled-down version of a notebook cell running time.sleep(10): heartbeat 2 s, loop blocked 2.5 s,
    # longer than the heartbeat, so the broker's heartbeats pile up unread and ours are not sent.
    heartbeat, block = 2, 2.5
    connection = await aiormq.connect(broker.url + f"?heartbeat={heartbeat}")
    try:
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        port = int(broker.url.rsplit(":", 1)[1].strip("/"))
        answered: list[float] = []
        other = threading.Thread(target=_handshake_seconds, args=(port, answered))
        other.start()
        time.sleep(block)  # noqa: ASYNC251 - blocking the loop on purpose, like a notebook cell
        other.join(WAIT)
        assert answered and answered[0] < block / 2, "another client must be served while the kernel's loop is blocked"
        await channel.basic_publish(b"after", routing_key=queue)  # confirmed: the broker still has us
        got = await channel.basic_get(queue, no_ack=True)
        assert got.body == b"after"
        assert not connection.is_closed
    finally:
        await connection.close()
