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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_make_lab_serves_a_chapter_on_loopback(tmp_path):
    port, token = free_port(), "soak-test-token"
    args = f"--no-browser --port={port} --IdentityProvider.token={token} --ServerApp.port_retries=0"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    server = subprocess.Popen(["make", "--no-print-directory", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/{CHAPTER}?content=1&token={token}"
        deadline, last = time.monotonic() + 90, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = get(url)
                break
            except (urllib.error.URLError, ConnectionError) as e:
                last = e
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
