"""Run the embedded broker on its own: ``python -m labkit.broker --port 5673``.

Why a CLI: the lab runs the broker in a separate process (it gets its own core and keeps answering
heartbeats while a notebook cell blocks the kernel; numbers in bench/broker.py), and BrokerProcess
starts it through this entry point. The output is a tiny machine-readable contract, flushed line by line:

    amqp://guest:guest@127.0.0.1:PORT/      first line, once the broker accepts connections
    admin http://127.0.0.1:N/               second line, only with --admin-port

``--exit-with-parent`` makes the broker exit when its stdin reaches EOF: the parent holds the write end
of a pipe, and the kernel closes it whenever the parent dies, even by SIGKILL, so the broker can never
outlive the kernel that started it. SIGTERM and SIGINT stop it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import stat
import sys
from typing import Any

from .._validate import port as check_port
from .admin import AdminServer
from .server import Broker

# Broker keyword -> (flag, type, help). BrokerProcess builds its command line from the same table.
OPTIONS: dict[str, tuple[str, type, str]] = {
    "host": ("--host", str, "address to listen on (default 127.0.0.1)"),
    "port": ("--port", int, "AMQP port; 0 picks a free one (default 0)"),
    "user": ("--user", str, "the one accepted user name (default guest)"),
    "password": ("--password", str, "its password (default guest)"),
    "heartbeat": ("--heartbeat", int, "heartbeat the broker proposes, in seconds (default 60)"),
    "frame_max": ("--frame-max", int, "largest frame the broker accepts, in bytes (default 131072)"),
    "channel_max": ("--channel-max", int, "highest channel number per connection (default 2047)"),
    "memory_limit": ("--memory-limit", int, "queued-bytes limit that blocks publishers (default none)"),
    "handshake_timeout": (
        "--handshake-timeout",
        float,
        "seconds a new connection gets to finish the handshake (default 10)",
    ),
    "max_message_size": (
        "--max-message-size",
        int,
        "largest message body in bytes (default: the profile's, 16 MiB on 4.3, 128 MiB on 3.10)",
    ),
    "rabbitmq": (
        "--rabbitmq",
        str,
        "RabbitMQ release to behave like: 4.3 or 3.10 (default $LABKIT_RABBITMQ, else 4.3)",
    ),
    "history": (
        "--history",
        str,
        "append routing, drops and dead-letters to this file (labkit.broker.tap; default off)",
    ),
    "data_dir": (
        "--data-dir",
        str,
        "keep durable queues and persistent messages here across restarts (default: in memory only)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.broker",
        description="The lab's embedded AMQP 0-9-1 broker. Prints its AMQP URL on the first line.",
    )
    for flag, kind, text in OPTIONS.values():
        parser.add_argument(flag, type=kind, help=text)
    parser.add_argument("--admin-port", type=int, help="serve the JSON admin API on 127.0.0.1:N (0 = free port)")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when stdin reaches EOF (stdin must be a pipe or socket)"
    )
    return parser


def argv(**broker_options: Any) -> list[str]:
    """Command-line flags for ``broker_options`` (Broker keyword arguments); None means "default"."""
    unknown = sorted(set(broker_options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"broker option must be one of {', '.join(OPTIONS)}, got {', '.join(unknown)}")
    out: list[str] = []
    for name, value in broker_options.items():
        if value is not None:
            out += [OPTIONS[name][0], str(value)]
    return out


class _EOFWatcher(asyncio.Protocol):
    """Calls ``on_eof`` when the parent's end of the stdin pipe closes; any data sent is ignored."""

    def __init__(self, on_eof: Any) -> None:
        self.on_eof = on_eof

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self.on_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_eof()


def _stdin_is_pipe() -> bool:
    mode = os.fstat(sys.stdin.fileno()).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def serve(broker: Any, admin: AdminServer | None, exit_with_parent: bool) -> None:
    """Run until SIGTERM/SIGINT (or stdin EOF with ``exit_with_parent``), then stop everything."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    stdin_transport = None
    try:
        if exit_with_parent:
            stdin_transport, _ = await loop.connect_read_pipe(lambda: _EOFWatcher(stopping.set), sys.stdin)
        await broker.start()
        try:
            print(broker.url, flush=True)
            if admin is not None:
                await admin.start()
                print(f"admin {admin.url}", flush=True)
            await stopping.wait()
        finally:
            if admin is not None:
                await admin.stop()
            await broker.stop()
    finally:
        if stdin_transport is not None:
            stdin_transport.close()
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(args)
    options = {name: getattr(ns, name) for name in OPTIONS if getattr(ns, name) is not None}
    if ns.exit_with_parent and not _stdin_is_pipe():
        parser.error("--exit-with-parent needs stdin to be a pipe or socket (start it with stdin=PIPE)")
    try:
        broker = Broker(**options)
        admin = None
        if ns.admin_port is not None:
            admin = AdminServer(broker, port=check_port("admin_port", ns.admin_port, allow_zero=True))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(serve(broker, admin, ns.exit_with_parent))
    except OSError as exc:  # e.g. the port is taken: say so in one line, not a traceback
        print(f"labkit.broker: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
