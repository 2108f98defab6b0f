"""Hand numbers a run measured to the chapter's prose, so the prose never types them.

Why: a sentence like "the queue peaked at 76 messages" is true of one run only. myst-nb's ``glue``
stores a value in the cell's output, and ``{glue:text}`name:fmt``` in a markdown cell shows it, so the
built book quotes the build's own run (and tests/book/test_glue_rule.py fails a chapter whose prose
types a measured number instead). This is myst-nb's glue output format written out here, so a learner's
kernel needs no Jupyter Book install: the output is invisible in JupyterLab, where the numbers are
printed by the experiment's own cells anyway.

    glue(ch02_depth_peak=numbers["depth peak"], ch02_drained_s=numbers["drained at (s)"])
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real
from typing import Any

__all__ = ["glue"]

#: The mimetype prefix myst-nb reads glued values from (``myst_nb.ext.glue.GLUE_PREFIX``); hidden outputs.
GLUE_PREFIX = "application/papermill.record/"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _plain(name: str, value: Any) -> int | float | str:
    """The value as a plain int, float or str: myst-nb reads it back with ``ast.literal_eval``."""
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise ValueError(f"{name} must be a number or a string, got {value!r}")
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    return value


def glue(**values: Any) -> None:
    """Glue each ``name=value`` for ``{glue:text}`name:fmt``` in the chapter's markdown (no visible output).

    Names must be Python identifiers; values numbers (stored as plain int or float) or strings.
    """
    from IPython.display import display

    if not values:
        raise ValueError("glue needs at least one name=value")
    for name, value in values.items():
        if not _NAME.match(name):
            raise ValueError(f"glue names must be identifiers, got {name!r}")
        plain = _plain(name, value)
        display(
            {GLUE_PREFIX + "text/plain": repr(plain)},
            raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
        )
