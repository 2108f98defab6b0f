"""``make lab`` starts JupyterLab on 127.0.0.1 and serves a chapter, as root too (containers and fresh
cloud machines run as root, where JupyterLab refuses to start without --allow-root)."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "01-waiting-is-a-choice.ipynb"


def served_port(runtime_dir: Path) -> int | None:
    """The port the server chose, from the info file it writes in its runtime directory; None before then.

    Why not a free port probed by the test: between the probe and the server's bind (``make install`` runs
    first, a few seconds), a kernel that a notebook test starts next door can take that port, and the test
    then talks to the kernel (a soak run got a ZeroMQ greeting for a status line). With ``--port=0`` the
    server picks its port itself as it starts, not seconds before, and the test reads which."""
    info = next(runtime_dir.glob("jpserver-*.json"), None)
    try:
        return json.loads(info.read_text())["port"] if info else None
    except ValueError:  # caught while the server was still writing it
        return None


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_make_lab_serves_a_chapter_on_loopback(tmp_path):
    token, runtime = "soak-test-token", tmp_path / "rt"
    args = f"--no-browser --port=0 --IdentityProvider.token={token} --ServerApp.port_retries=0"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(runtime),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    server = subprocess.Popen(["make", "--no-print-directory", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, last, port = time.monotonic() + 90, "no server info file", None
        while time.monotonic() < deadline and server.poll() is None:
            port = port or served_port(runtime)
            if port is not None:
                try:
                    status, body = get(f"http://127.0.0.1:{port}/api/contents/{CHAPTER}?content=1&token={token}")
                    break
                except (urllib.error.URLError, ConnectionError) as e:
                    last = repr(e)
            time.sleep(0.5)
        else:
            raise AssertionError(f"JupyterLab never served {CHAPTER}: exit {server.poll()}, last error {last}")
        assert status == 200
        notebook = json.loads(body)
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
        assert get(f"http://127.0.0.1:{port}/lab/tree/{CHAPTER}?token={token}")[0] == 200
        with socket.socket() as s:  # loopback only: the port is not open on another local address
            s.settimeout(1)
            others = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
            for address in others:
                assert s.connect_ex((address, port)) != 0, f"JupyterLab listens on {address} too"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    if os.geteuid() == 0:
        assert "running as root, so JupyterLab gets --allow-root" in output
    else:
        assert "--allow-root" not in output
