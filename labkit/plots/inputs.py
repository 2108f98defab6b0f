"""What the figure builders accept, checked and normalised: labelled series, records, latencies in ms.

Why: every builder takes the kit's own data types (a Recording, a list of records, latencies in seconds,
``{label: data}`` dicts) and must refuse anything else with the same message, naming the argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labkit.metrics import Recording

__all__ = ["as_latencies", "as_records", "check_same_length", "labelled", "to_ms"]


def labelled(name: str, mapping: Any, allow_empty: bool = False) -> list[tuple[str, Any]]:
    if not isinstance(mapping, Mapping) or (not mapping and not allow_empty):
        raise ValueError(f"{name} must be a non-empty dict of {{label: data}}, got {mapping!r}")
    return [(str(k), v) for k, v in mapping.items()]


def check_same_length(name: str, a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name} must have as many values as x ({len(a)}), got {len(b)}")


def as_records(name: str, data: Any) -> list[Any]:
    records = list(data)
    if not all(hasattr(r, "latency") and hasattr(r, "ok") for r in records):
        raise ValueError(f"{name} must be a Recording or a list of labkit.metrics.Record")
    return records


def as_latencies(name: str, data: Any) -> list[float]:
    """Seconds: from a Recording (successful ones), a list of records (successful ones) or of numbers."""
    if isinstance(data, Recording):
        return data.latencies("ok")
    values = list(data)
    if all(hasattr(v, "latency") for v in values):
        return [v.latency for v in values if v.ok]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a Recording, a list of records, or latencies in seconds")
    return values


def to_ms(seconds: Iterable[float]) -> list[float]:
    return [s * 1e3 for s in seconds]
