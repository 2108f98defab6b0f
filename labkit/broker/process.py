"""BrokerProcess: the embedded broker in a child process that the kernel owns and always reaps.

Why a process and not a task in the kernel's event loop: measured in bench/broker.py, the broker gets a
core of its own instead of sharing one with the aiormq clients, and it keeps answering (heartbeats,
other clients) while a notebook cell blocks the kernel with ``time.sleep``.

Why it cannot leak: the child runs ``python -m labkit.broker --exit-with-parent`` with its stdin on a
pipe whose only write end this process holds. ``stop()`` terminates and reaps it; a ``weakref.finalize``
(also run at interpreter exit) does the same if the object is dropped; and if the kernel dies without
running any Python (SIGKILL, OOM), the OS closes the pipe, the child sees EOF and exits on its own.
The child gets its own session so a notebook "interrupt" (SIGINT to the kernel's process group) stops
the cell, not the broker.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import weakref
from typing import IO, Any
from urllib.parse import urlsplit

from .._validate import positive
from .__main__ import argv
from .server import Broker

__all__ = ["BrokerProcess"]


def _reap(proc: subprocess.Popen[bytes], errlog: IO[bytes], timeout: float = 5.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``timeout``), wait for it and close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, errlog):
        if stream is None:
            continue
        try:
            stream.close()
        except OSError:
            pass


async def _exited(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to ``timeout`` s for ``proc`` to exit without blocking the event loop."""
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        pass


def _stderr_tail(errlog: IO[bytes], limit: int = 2000) -> str:
    errlog.seek(0)
    return errlog.read().decode(errors="replace")[-limit:].strip()


class BrokerProcess:
    """A running ``python -m labkit.broker`` child. Create it with ``await BrokerProcess.start(...)``."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        errlog: IO[bytes],
        url: str,
        admin_url: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._adopt(proc, errlog, url, admin_url)
        self._options = dict(options or {})

    def _adopt(self, proc: subprocess.Popen[bytes], errlog: IO[bytes], url: str, admin_url: str) -> None:
        self._proc = proc
        self._errlog = errlog
        self.url = url
        self.admin_url = admin_url
        self._finalizer = weakref.finalize(self, _reap, proc, errlog)

    @classmethod
    async def start(cls, *, startup_timeout: float = 20.0, **broker_options: Any) -> BrokerProcess:
        """Spawn the broker (Broker keyword arguments, default port 0) and wait for its two URLs."""
        positive("startup_timeout", startup_timeout)
        options = {"port": 0, **broker_options}
        argv(**options)  # unknown options: a ValueError naming them
        Broker(**options)  # validate here, so a bad option is a ValueError naming it, not a child's exit status
        return cls(*await _spawn(options, startup_timeout), options=options)

    async def crash(self) -> None:
        """Kill the broker with SIGKILL, as a crash would: no connection.close, no final write; clients
        see their sockets closed. With a ``data_dir``, :meth:`restart` recovers what was on disk."""
        if self._proc.poll() is None:
            self._proc.kill()
            await _exited(self._proc, 10.0)
        self._finalizer()

    async def restart(self, startup_timeout: float = 20.0) -> None:
        """Start the broker again on the same port (stopping it first if it still runs), so clients
        reconnect to the same URL; durable state comes back from its ``data_dir``, if it has one."""
        positive("startup_timeout", startup_timeout)
        if self._finalizer.alive:
            await self.stop()
        options = {**self._options, "port": urlsplit(self.url).port}
        self._adopt(*await _spawn(options, startup_timeout))

    @property
    def data_dir(self) -> str | None:
        """Where the broker keeps its durable state (None: in memory only, lost on crash or restart)."""
        return self._options.get("data_dir")

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """None while the broker runs; its exit status afterwards."""
        return self._proc.poll()

    async def queues(self) -> list[dict[str, Any]]:
        """Every queue as a dict: name, type, messages_ready, messages_unacknowledged, consumers, rates."""
        queues: list[dict[str, Any]] = await self._call("GET", "/api/queues")
        return queues

    async def overview(self) -> dict[str, Any]:
        """Totals over all queues plus the broker's pid and uptime."""
        overview: dict[str, Any] = await self._call("GET", "/api/overview")
        return overview

    async def reset(self) -> None:
        """Delete every queue, exchange and binding the lab declared (a clean slate between runs)."""
        await self._call("POST", "/api/reset")

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate (SIGTERM; SIGKILL after ``timeout`` s) and reap the child. Safe to call twice."""
        positive("timeout", timeout)
        if not self._finalizer.alive:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            await _exited(self._proc, timeout)
        self._finalizer()  # kills if still running, waits, closes the pipes

    async def _call(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """One request to the admin endpoint (it closes every connection after its response)."""
        if self.returncode is not None:
            raise RuntimeError(f"broker process has exited with status {self.returncode}")
        address = urlsplit(self.admin_url)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.hostname, address.port), timeout)
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Length: 0\r\n"
                f"Connection: close\r\n\r\n".encode()
            )
            raw = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        payload = json.loads(body) if body else None
        if status != 200:
            raise RuntimeError(f"broker admin {method} {path} answered {status}: {payload}")
        return payload

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<BrokerProcess pid={self.pid} {self.url} {state}>"


def _read_urls(proc: subprocess.Popen[bytes]) -> tuple[str, str] | None:
    """Blocking: the AMQP URL and admin URL the child prints first; None if it exits before that."""
    assert proc.stdout is not None  # started with stdout=PIPE
    url = proc.stdout.readline().decode().strip()
    admin = proc.stdout.readline().decode().strip()
    if not url.startswith("amqp://") or not admin.startswith("admin http://"):
        return None
    return url, admin.removeprefix("admin ")


async def _spawn(
    options: dict[str, Any], startup_timeout: float
) -> tuple[subprocess.Popen[bytes], IO[bytes], str, str]:
    """Start ``python -m labkit.broker`` with ``options``; return the process, its stderr log and its URLs."""
    flags = argv(**options)
    cmd = [sys.executable, "-m", "labkit.broker", *flags, "--admin-port", "0", "--exit-with-parent"]
    errlog = tempfile.TemporaryFile()
    # Popen returns once the child is forked; asyncio's subprocess would tie the broker to this event loop,
    # and a notebook's broker must outlive the loop that started it.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, start_new_session=True)  # noqa: ASYNC220
    try:
        lines = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, _read_urls, proc), startup_timeout
        )
        if lines is None:
            await _exited(proc, timeout=5.0)
            raise RuntimeError(
                f"broker process exited with status {proc.poll()} before it was ready: {_stderr_tail(errlog)}"
            )
    except BaseException as exc:
        detail = _stderr_tail(errlog)
        _reap(proc, errlog)  # also ends the reader thread: the child's stdout closes
        if isinstance(exc, asyncio.TimeoutError):
            raise RuntimeError(f"broker process printed no URLs within {startup_timeout} s: {detail}") from None
        raise
    return (proc, errlog, *lines)
