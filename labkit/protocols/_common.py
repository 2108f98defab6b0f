"""What the echo servers and clients of every protocol share: the payload, its check and the work."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit._validate import integer

__all__ = ["payload"]


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` seeded random bytes: incompressible, like an image or an encrypted field."""
    integer("size", size, 0, 64 << 20)
    return random.Random(seed).randbytes(size)


def check_bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


async def work(seconds: float) -> None:
    if seconds:
        await asyncio.sleep(seconds)
