"""Binder's `start` script: falls back to the embedded broker when RabbitMQ is absent or broken, points
AMQP_URL at the server it launched when one comes up, and gives that server a default install's config.
rabbitmq-server is replaced by small fakes on PATH, so the test needs no RabbitMQ and never touches port
5672. The script runs from a copy in the test's own world-readable directory, so the test does not depend
on where the checkout lives (as root it runs as nobody, who cannot enter a mode-700 home or temp dir)."""
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "start"
PRINT_ENV = ["python3", "-c", "import os; print('AMQP_URL=' + os.environ.get('AMQP_URL', '<unset>'))"]


# Binder runs `start` as a non-root user, and the script refuses to start RabbitMQ as root: when the tests
# run as root, run the script as nobody.
AS_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []


@pytest.fixture
def tmp_path():
    """A home directory the (possibly unprivileged) script can write to."""
    path = Path(tempfile.mkdtemp(prefix="binder-start-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_start(tmp_path, path_dirs, as_user=AS_USER, **env):
    script = tmp_path / "start"
    shutil.copyfile(START, script)
    script.chmod(0o755)
    base = {"PATH": os.pathsep.join(map(str, path_dirs)), "HOME": str(tmp_path),
            "RABBITMQ_START_TIMEOUT": "10"}
    return subprocess.run([*as_user, "bash", str(script), *PRINT_ENV], env={**base, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def fake_server(tmp_path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "rabbitmq-server"
    script.write_text(f"#!/usr/bin/env python3\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC | stat.S_IRGRP | stat.S_IROTH | stat.S_IXOTH)
    bin_dir.chmod(0o755)
    return bin_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def system_dirs():
    """Directories for bash, id, seq, sleep and mkdir, none with a rabbitmq-server."""
    return [d for d in ("/usr/bin", "/bin") if not (Path(d) / "rabbitmq-server").exists()]


def test_start_is_an_executable_bash_script():
    assert os.access(START, os.X_OK)
    assert START.read_text().startswith("#!/usr/bin/env bash")


def test_without_rabbitmq_it_execs_the_command_with_amqp_url_unset(tmp_path):
    result = run_start(tmp_path, system_dirs())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AMQP_URL=<unset>"


def test_an_amqp_url_that_is_already_set_is_kept(tmp_path):
    bin_dir = fake_server(tmp_path, "raise SystemExit('must not be started')")
    result = run_start(tmp_path, [bin_dir, *system_dirs()], AMQP_URL="amqp://u:p@127.0.0.1:1/")
    assert result.stdout.strip() == "AMQP_URL=amqp://u:p@127.0.0.1:1/"
    assert not (tmp_path / ".rabbitmq").exists()


def test_a_server_that_dies_falls_back_quickly(tmp_path):
    bin_dir = fake_server(tmp_path, "raise SystemExit(1)")
    began = time.monotonic()
    result = run_start(tmp_path, [bin_dir, *system_dirs()], RABBITMQ_NODE_PORT=str(free_port()),
                       RABBITMQ_START_TIMEOUT="30")
    assert result.stdout.strip() == "AMQP_URL=<unset>"
    assert "embedded broker" in result.stderr
    assert time.monotonic() - began < 25  # it noticed the exit instead of waiting for the 30 s timeout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check the root guard")
def test_as_root_it_does_not_start_rabbitmq(tmp_path):
    bin_dir = fake_server(tmp_path, "raise SystemExit('must not be started')")
    result = run_start(tmp_path, [bin_dir, *system_dirs()], as_user=[], RABBITMQ_NODE_PORT=str(free_port()))
    assert result.stdout.strip() == "AMQP_URL=<unset>"
    assert not (tmp_path / ".rabbitmq").exists()


def test_a_server_that_comes_up_gets_amqp_url_and_a_default_installs_config_on_loopback(tmp_path):
    """start points AMQP_URL at the server, and writes rabbitmq.conf for it: loopback listeners, guest on
    loopback only, and no deprecated feature permitted (RabbitMQ 4.3's defaults, written out)."""
    port = free_port()
    body = ("import os, shutil, socket, time\n"
            "assert os.environ['RABBITMQ_NODE_IP_ADDRESS'] == '127.0.0.1'\n"
            "shutil.copy(os.environ['RABBITMQ_CONFIG_FILE'], os.path.join(os.environ['HOME'], 'seen.conf'))\n"
            "s = socket.create_server((os.environ['RABBITMQ_NODE_IP_ADDRESS'], int(os.environ['RABBITMQ_NODE_PORT'])))\n"
            "time.sleep(30)")
    bin_dir = fake_server(tmp_path, body)
    result = run_start(tmp_path, [bin_dir, *system_dirs()], RABBITMQ_NODE_PORT=str(port))
    pid = int((tmp_path / ".rabbitmq" / "server.pid").read_text())
    try:
        assert result.stdout.strip() == f"AMQP_URL=amqp://guest:guest@127.0.0.1:{port}/", result.stderr
        settings = dict(line.split(" = ", 1) for line in (tmp_path / "seen.conf").read_text().splitlines()
                        if line and not line.startswith("#"))
    finally:
        os.kill(pid, signal.SIGTERM)
    assert settings == {
        "listeners.tcp.default": f"127.0.0.1:{port}",
        "distribution.listener.interface": "127.0.0.1",
        "loopback_users.guest": "true",
        "deprecated_features.permit.transient_nonexcl_queues": "false",
        "deprecated_features.permit.global_qos": "false",
        "deprecated_features.permit.queue_master_locator": "false",
    }


def test_environment_pins_a_4x_rabbitmq_from_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    [pin] = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("rabbitmq-server")]
    assert pin.startswith("rabbitmq-server=4."), pin
