"""`python -m labkit.broker` and its JSON admin endpoint, driven the way BrokerProcess and readers use them.

Why these tests: the CLI's first two stdout lines are a contract other code parses, its exit paths
(SIGTERM, SIGINT, stdin EOF, a taken port, a bad argument) decide whether a broker outlives a kernel or
leaves a traceback in a notebook, and the admin endpoint is what the kernel asks for queue depths.
Everything runs a real child process on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import aiormq
import pytest

from labkit.broker import profiles
from labkit.broker.__main__ import OPTIONS, argv

CMD = [sys.executable, "-m", "labkit.broker"]
WAIT = 20  # seconds a child gets to start or to exit; generous for a loaded 2-core machine


class Child:
    """A CLI broker child with its stdout lines read; ``stop`` always kills and reaps it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CMD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.url = self.proc.stdout.readline().decode().strip()
        if "--admin-port" in args:
            self.admin = self.proc.stdout.readline().decode().strip().removeprefix("admin ")

    def wait(self) -> tuple[int, str, str]:
        """Exit status, the rest of stdout and stderr, once the child exits by itself."""
        self.proc.wait(WAIT)
        return self.proc.returncode, self.proc.stdout.read().decode(), self.proc.stderr.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def child():
    started: list[Child] = []

    def start(*args: str) -> Child:
        started.append(Child(*args))
        return started[-1]

    yield start
    for c in started:
        c.stop()


def http(method: str, url: str) -> tuple[int, object, dict]:
    """(status, decoded JSON body, headers) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


# --- argument handling --------------------------------------------------------------------------------


def test_argv_maps_every_broker_option_and_skips_none():
    assert argv(port=0, heartbeat=5, frame_max=8192, memory_limit=None) == [
        "--port",
        "0",
        "--heartbeat",
        "5",
        "--frame-max",
        "8192",
    ]
    assert set(OPTIONS) >= {"host", "port", "user", "password", "heartbeat", "memory_limit"}


def test_argv_rejects_unknown_options_by_name():
    with pytest.raises(ValueError, match=r"broker option must be one of .*got bogus"):
        argv(port=0, bogus=1)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--port", "70000"], "port"),
        (["--admin-port", "-1"], "admin_port must be an integer in [0, 65535], got -1"),
        (["--heartbeat", "-5"], "heartbeat"),
        (["--port", "five"], "--port: invalid int value"),
        (
            ["--rabbitmq", "3.13"],
            "rabbitmq must be one of '4.3', '3.10' (the RabbitMQ release to behave like), got '3.13'",
        ),
    ],
)
def test_bad_arguments_exit_2_and_name_the_argument(args, needle):
    done = subprocess.run([*CMD, *args], stdin=subprocess.PIPE, capture_output=True, timeout=WAIT)
    assert done.returncode == 2, done
    assert needle in done.stderr.decode()
    assert done.stdout == b"", "nothing may look like a URL when the broker did not start"


def test_exit_with_parent_refuses_a_stdin_that_is_not_a_pipe():
    done = subprocess.run([*CMD, "--exit-with-parent"], stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT)
    assert done.returncode == 2
    assert "pipe" in done.stderr.decode()


def test_a_taken_port_exits_1_with_one_line_and_no_traceback():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = subprocess.run([*CMD, "--port", str(taken)], stdin=subprocess.PIPE, capture_output=True, timeout=WAIT)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err and err.startswith("labkit.broker:")
    assert done.stdout == b""


def test_the_broker_process_stays_lean():
    # The idle-RSS budget (40 MB, bench/broker.py) has no room for aiohttp.web (+15 MB measured) or the
    # client stack: the CLI, the broker and the admin endpoint must not import them.
    code = (
        "import sys, labkit.broker.__main__, labkit.broker.admin; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'aiormq', 'yarl', 'plotly', "
        "'psutil', 'numpy'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=WAIT)
    assert done.stdout.decode().strip() == "[]", done


# --- running ------------------------------------------------------------------------------------------


async def test_prints_amqp_url_then_admin_url_and_serves_amqp(child):
    c = child("--port", "0", "--admin-port", "0")
    assert c.url.startswith("amqp://guest:guest@127.0.0.1:") and c.url.endswith("/")
    assert c.admin.startswith("http://127.0.0.1:") and c.admin.endswith("/")
    connection = await aiormq.connect(c.url)
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare("", exclusive=True)
        await channel.basic_publish(b"hello", routing_key=declared.queue)
        got = await channel.basic_get(declared.queue, no_ack=True)
        assert got.body == b"hello"
    finally:
        await connection.close()


@pytest.mark.parametrize("profile, version", [("3.10", "3.10.8"), ("4.3", "4.3.0"), (None, None)])
async def test_rabbitmq_picks_the_profile_and_the_server_says_which(child, profile, version):
    version = version or profiles.resolve(None).version  # no flag: $LABKIT_RABBITMQ, else 4.3
    c = child("--port", "0", *(["--rabbitmq", profile] if profile else []))
    connection = await aiormq.connect(c.url)
    try:
        assert connection.server_properties["version"] == version
    finally:
        await connection.close()


def test_without_admin_port_prints_only_the_amqp_url(child):
    c = child("--port", "0")
    assert c.url.startswith("amqp://")
    c.proc.terminate()
    status, rest, _ = c.wait()
    assert (status, rest) == (0, ""), "a second line appears only with --admin-port"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_stop_it_cleanly(child, sig):
    c = child("--port", "0", "--admin-port", "0")
    c.proc.send_signal(sig)
    status, _, err = c.wait()
    assert status == 0, err
    assert "Traceback" not in err


def test_exit_with_parent_exits_when_stdin_closes(child):
    c = child("--port", "0", "--exit-with-parent")
    assert c.url.startswith("amqp://")
    assert c.proc.poll() is None, "data or silence on stdin must not stop it"
    c.proc.stdin.write(b"ignored\n")
    c.proc.stdin.flush()
    c.proc.stdin.close()
    status, _, err = c.wait()
    assert status == 0, err


# --- the admin endpoint -------------------------------------------------------------------------------


async def test_admin_reports_queues_and_overview_and_reset_empties_them(child):
    c = child("--port", "0", "--admin-port", "0")
    name = f"cli-admin-{uuid.uuid4().hex[:8]}"
    connection = await aiormq.connect(c.url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(name, durable=True)
        for i in range(3):
            await channel.basic_publish(b"%d" % i, routing_key=name)

        status, queues, headers = http("GET", c.admin + "api/queues")
        assert status == 200 and headers["Content-Type"] == "application/json"
        mine = [q for q in queues if q["name"] == name]
        assert len(mine) == 1 and mine[0]["messages_ready"] == 3 and mine[0]["consumers"] == 0

        status, overview, _ = http("GET", c.admin + "api/overview")
        assert status == 200
        assert overview["queues"] == len(queues) and overview["messages_ready"] >= 3
        assert overview["url"] == c.url and overview["pid"] == c.proc.pid

        status, body, _ = http("POST", c.admin + "api/reset")
        assert (status, body) == (200, {"reset": True})
        _, queues, _ = http("GET", c.admin + "api/queues")
        assert name not in [q["name"] for q in queues]
    finally:
        await connection.close()


def test_admin_answers_wrong_paths_methods_and_garbage_with_json_errors(child):
    c = child("--port", "0", "--admin-port", "0")
    status, body, _ = http("GET", c.admin + "api/nope")
    assert status == 404 and "/api/queues" in body["error"]
    status, body, headers = http("GET", c.admin + "api/reset")
    assert status == 405 and headers["Allow"] == "POST"

    port = int(c.admin.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = raw.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400 ")
    status, _, _ = http("GET", c.admin + "api/queues")
    assert status == 200, "a bad request must not break the endpoint"
