"""What every lab part is (:class:`Component`), the base that writes its context manager and guard once
(:class:`Part`), and the two guards of a part's life: a failed start stops what it opened
(:func:`stopped_on_failure`), and a resource used while stopped says so (:func:`started`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")


@runtime_checkable
class Component(Protocol):
    """What every lab part is: started once, stopped once (stopping twice is harmless)."""

    @property
    def running(self) -> bool: ...

    async def start(self) -> Any: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: Any) -> None: ...


class Part:
    """Base of the lab's parts: the context manager and the "already running" guard, written once.

    A subclass implements ``start`` (ending with ``return self``), ``stop`` and ``running``.
    """

    name: str = "part"

    @property
    def running(self) -> bool:
        raise NotImplementedError

    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    def _check_stopped(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")


@contextlib.asynccontextmanager
async def stopped_on_failure(part: Any) -> AsyncIterator[None]:
    """Run a start's steps; if one fails, or the start is cancelled, stop ``part`` and re-raise.

    Why: a part that fails half-way through its start would otherwise keep the sockets, connections and
    tasks of the steps that did succeed until the kernel dies. Its ``stop`` releases whatever exists.
    """
    try:
        yield
    except BaseException:
        await part.stop()
        raise


def started(resource: T | None, part: str) -> T:
    """``resource`` (a connection, channel, session... that ``part`` opens in ``start()``), or a clear error
    when ``part`` is not running, instead of an AttributeError on None."""
    if resource is None:
        raise RuntimeError(f"{part} is not running: start it first")
    return resource
