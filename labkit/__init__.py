"""Sync vs Async, Live: the lab the course notebooks import.

``from labkit import Lab`` is all a chapter needs to begin; the other modules (``labkit.plots``,
``labkit.load``, ``labkit.theory``, ...) are imported by name. ``Lab`` is loaded on first use so that
importing a small module (say ``labkit.theory``) does not pull in aiohttp and aiormq.
"""

import sys
from typing import Any

__all__ = ["Lab"]

# plotly imports nbformat, nbformat imports jsonschema, and jsonschema builds a lark parser for the
# optional ``rfc3987_syntax`` IRI checker at import time: about 2 s of CPU in every chapter kernel, a
# large share of a chapter's 30 s budget. Nothing in a lab kernel validates IRIs, so the checker is
# marked unavailable (jsonschema then skips the "iri" formats) unless something already loaded it.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: "not importable"


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from labkit.lab import Lab

        return Lab
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
