"""Sync vs Async, Live: the lab the course notebooks import.

``from labkit import Lab`` is all a chapter needs to begin; the other modules (``labkit.plots``,
``labkit.load``, ``labkit.theory``, ...) are imported by name. ``Lab`` is loaded on first use so that
importing a small module (say ``labkit.theory``) does not pull in aiohttp and aiormq.
"""

from typing import Any

__all__ = ["Lab"]


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from labkit.lab import Lab

        return Lab
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
