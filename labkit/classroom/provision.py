"""Provisioning backends: create and remove a class's vhost, users, permissions and user limits.

Why two: RabbitMQ's management HTTP API (the rabbitmq_management plugin) is fast (a few ms per call)
and reachable from a notebook; ``rabbitmqctl`` needs no plugin but must run on the broker's host as a
user allowed to talk to the node, and boots an Erlang VM per call (about 3 s here). The embedded
broker's admin endpoint serves the same API paths (labkit/broker/admin.py), so ``ManagementAPI``
provisions both brokers. Each backend touches only the vhost and the users it is given.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from typing import Protocol
from urllib.parse import quote

import aiohttp


class ProvisioningError(RuntimeError):
    pass


class Backend(Protocol):
    async def add_vhost(self, vhost: str) -> None: ...
    async def delete_vhost(self, vhost: str) -> None: ...
    async def add_user(self, user: str, password: str) -> None: ...
    async def delete_user(self, user: str) -> None: ...
    async def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None: ...
    async def set_max_channels(self, user: str, limit: int) -> None: ...
    async def close(self) -> None: ...


def _q(name: str) -> str:
    return quote(name, safe="")


class ManagementAPI:
    """RabbitMQ's management HTTP API (or the embedded broker's admin endpoint, same paths)."""

    def __init__(self, url: str, user: str = "guest", password: str = "guest", timeout: float = 10.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be the management API's http:// URL, got {url!r}")
        self.url = url.rstrip("/") + "/api/"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Basic {token}"}, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def _call(self, method: str, path: str, body: dict | None = None) -> None:
        async with self._session.request(method, self.url + path, json=body) as response:
            if response.status >= 300 and not (method == "DELETE" and response.status == 404):
                raise ProvisioningError(f"{method} {path}: HTTP {response.status} {await response.text()}")

    async def add_vhost(self, vhost: str) -> None:
        await self._call("PUT", f"vhosts/{_q(vhost)}", {})

    async def delete_vhost(self, vhost: str) -> None:
        await self._call("DELETE", f"vhosts/{_q(vhost)}")

    async def add_user(self, user: str, password: str) -> None:
        await self._call("PUT", f"users/{_q(user)}", {"password": password, "tags": ""})

    async def delete_user(self, user: str) -> None:
        await self._call("DELETE", f"users/{_q(user)}")

    async def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        await self._call(
            "PUT", f"permissions/{_q(vhost)}/{_q(user)}", {"configure": configure, "write": write, "read": read}
        )

    async def set_max_channels(self, user: str, limit: int) -> None:
        await self._call("PUT", f"user-limits/{_q(user)}/max-channels", {"value": limit})

    async def close(self) -> None:
        await self._session.close()


class Rabbitmqctl:
    """``rabbitmqctl`` on this host (root or the rabbitmq user). Slow: one Erlang VM per call."""

    def __init__(self, executable: str = "rabbitmqctl") -> None:
        found = shutil.which(executable)
        if found is None:
            raise ValueError(f"executable {executable!r} is not on PATH; install RabbitMQ's CLI or use ManagementAPI")
        self.executable = found

    async def _run(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            self.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode:
            raise ProvisioningError(f"rabbitmqctl {' '.join(args[:2])}: {(err or out).decode(errors='replace')}")

    async def add_vhost(self, vhost: str) -> None:
        await self._run("add_vhost", vhost)

    async def delete_vhost(self, vhost: str) -> None:
        await self._run("delete_vhost", vhost)

    async def add_user(self, user: str, password: str) -> None:
        # The password goes through stdin, not argv (other local users can read argv).
        proc = await asyncio.create_subprocess_exec(
            self.executable,
            "add_user",
            user,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(password.encode() + b"\n")
        if proc.returncode:
            raise ProvisioningError(f"rabbitmqctl add_user: {(err or out).decode(errors='replace')}")

    async def delete_user(self, user: str) -> None:
        await self._run("delete_user", user)

    async def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        await self._run("set_permissions", "-p", vhost, user, configure, write, read)

    async def set_max_channels(self, user: str, limit: int) -> None:
        await self._run("set_user_limits", user, json.dumps({"max-channels": limit}))

    async def close(self) -> None:
        return None
