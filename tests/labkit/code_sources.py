"""The Python the course runs: every labkit module outside the broker and every chapter code cell.

Why: several tests scan that code for a pattern the course has ruled out (a transient non-exclusive
queue, a polling loop without a deadline); they must all scan the same set, read the same way.
"""

import json
import pathlib
from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[2]


def code_sources() -> Iterator[tuple[str, str | None, str]]:
    """(file, cell id or None, source) for each labkit module (not the broker, which declares and waits as
    a server) and each chapter code cell, with IPython's ``%`` and ``!`` lines dropped so it parses."""
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        if "broker" not in path.relative_to(ROOT / "labkit").parts:
            yield str(path.relative_to(ROOT)), None, path.read_text()
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                yield (
                    path.name,
                    cell.get("id"),
                    "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))),
                )
