"""The HTTP half of the lifecycle layer: an aiohttp application served on loopback (:class:`HttpApp`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from labkit._validate import port as check_port

from .parts import Part, stopped_on_failure

if TYPE_CHECKING:
    from typing_extensions import Self


class HttpApp(Part):
    """An aiohttp application on 127.0.0.1 (an ephemeral port unless ``port`` is given).

    A subclass adds its routes in :meth:`add_routes`, and may acquire and release what serving needs in
    :meth:`on_start` / :meth:`on_stop` (a client session, a database). Stopping does not wait more than
    ``shutdown_timeout`` seconds for requests still running: a lab must stop promptly.
    """

    shutdown_timeout = 0.25
    #: the largest request body accepted (bytes); aiohttp's default
    client_max_size = 1024**2

    def __init__(self, *, name: str, port: int = 0):
        self.name = name
        self._port = check_port("port", port, allow_zero=True)
        self._runner: web.AppRunner | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError(f"{type(self).__name__} must add its routes")

    async def on_start(self) -> None:
        """Called once the app listens."""

    async def on_stop(self) -> None:
        """Called once the app has stopped listening."""

    async def start(self) -> Self:
        self._check_stopped()
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app.router)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        async with stopped_on_failure(self):
            await self.on_start()
        return self

    async def stop(self) -> None:
        """Close the listening socket and cancel requests still running, then :meth:`on_stop`."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        await self.on_stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123/``."""
        return f"http://127.0.0.1:{self.port}/"
