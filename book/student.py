"""Student edition: the same book with every solution taken out.

Why a separate build rather than ``hide_solutions``: sphinx-exercise only hides solutions in the HTML,
while the downloadable ``.ipynb``/``.md`` sources and ``_sources/`` would still carry them. This module
copies the book's sources into ``_build/student/src``, strips them, builds that copy, and exports the
stripped notebooks for students to run.

What counts as a solution:

- a ``{solution}`` directive in markdown (a ```` ``` ```` or ``:::`` fence, any length, nested fences kept
  intact) is removed with its body;
- a code cell tagged ``solution`` is removed. In the copy that is built it is also tagged ``remove-cell``,
  so the code cells (and with them the jupyter-cache key) stay the same and the build reuses the main
  build's executed notebooks instead of running the chapters twice; its source then never reaches the HTML,
  and ``_sources`` gets the fully stripped notebook.

Usage: ``python book/student.py [--root .] [--out _build/student]`` (what ``make student`` runs).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

SOLUTION_TAG = "solution"
OPEN_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{solution(?:-start)?\}")
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book", "chapters")
# Pages for teachers only: the instructors' guide names the answers the checks expect.
TEACHER_PAGES = ("book/instructors",)


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def strip_markdown(text: str) -> str:
    """``text`` without its ``{solution}`` directives (each fence with everything up to its close)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    kept, fence = [], None
    for line in text.splitlines(keepends=True):
        if fence is None:
            match = OPEN_FENCE.match(line)
            if match:
                fence = match["fence"]
            else:
                kept.append(line)
        elif _closes(line, fence):
            fence = None
    return "".join(kept)


def solution_texts(text: str) -> list[str]:
    """The bodies of the ``{solution}`` directives in ``text`` (what must not reach students)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    bodies, fence, body = [], None, []
    for line in text.splitlines(keepends=True):
        if fence is None:
            match = OPEN_FENCE.match(line)
            if match:
                fence, body = match["fence"], []
        elif _closes(line, fence):
            bodies.append("".join(body))
            fence = None
        else:
            body.append(line)
    return bodies


def _is_solution_cell(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def strip_notebook(nb, *, for_build: bool = False):
    """A stripped copy of ``nb``: no solution directives, no ``solution``-tagged cells.

    ``for_build=True`` keeps tagged code cells but tags them ``remove-cell`` (see the module docstring).
    """
    if not isinstance(for_build, bool):
        raise ValueError(f"for_build must be True or False, got {for_build!r}")
    nb = nbformat.from_dict(nbformat.from_dict(nb))  # deep copy
    cells = []
    for cell in nb.cells:
        if _is_solution_cell(cell):
            if not for_build or cell.cell_type != "code":
                continue
            cell.metadata["tags"] = cell.metadata["tags"] + ["remove-cell"]
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown(cell.source)
        cells.append(cell)
    nb.cells = cells
    return nb


def notebook_secrets(nb) -> list[str]:
    """Texts in ``nb`` that the student edition must not contain."""
    secrets = []
    for cell in nb.cells:
        if _is_solution_cell(cell):
            secrets.append(cell.source)
        elif cell.cell_type == "markdown":
            secrets.extend(solution_texts(cell.source))
    return secrets


def leaks(out_dir: Path, secrets: list[str], min_len: int = 40) -> list[tuple[str, str]]:
    """(file, line) pairs where a line of a secret (at least ``min_len`` characters) appears under ``out_dir``.

    Lines are compared after trimming, in the raw files and with JSON string escapes undone, so both
    HTML and ``.ipynb``/``searchindex.js`` are covered.
    """
    if min_len < 1:
        raise ValueError(f"min_len must be >= 1, got {min_len}")
    needles = {line.strip() for s in secrets for line in s.splitlines() if len(line.strip()) >= min_len}
    found = []
    for path in sorted(Path(out_dir).rglob("*")):
        if not path.is_file() or path.suffix not in {".html", ".ipynb", ".md", ".txt", ".js", ".json"}:
            continue
        raw = path.read_text(errors="replace")
        unescaped = raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        found += [(str(path), n) for n in needles if n in raw or n in unescaped]
    return found


def _drop_pages(entries: list, pages: tuple[str, ...]) -> list:
    """A _toc.yml entry list without ``pages`` (searching parts and sections)."""
    kept = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("file") in pages:
            continue
        if isinstance(entry, dict):
            entry = {k: _drop_pages(v, pages) if k in ("parts", "chapters", "sections") else v
                     for k, v in entry.items()}
        kept.append(entry)
    return kept


def prepare_sources(root: Path, src: Path) -> list[str]:
    """Copy the book from ``root`` into ``src`` with solutions and teacher pages stripped; return the secrets."""
    root, src = Path(root), Path(src)
    if not (root / "_toc.yml").is_file():
        raise ValueError(f"root must be a book directory with _toc.yml, got {root}")
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, src / name)
    secrets = []
    for top in BOOK_DIRS:
        if not (root / top).is_dir():
            continue
        shutil.copytree(root / top, src / top, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for path in (src / top).rglob("*.ipynb"):
            nb = nbformat.read(path, as_version=4)
            secrets += notebook_secrets(nb)
            nbformat.write(strip_notebook(nb, for_build=True), path)
        for path in (src / top).rglob("*.md"):
            text = path.read_text()
            secrets += solution_texts(text)
            path.write_text(strip_markdown(text))
    toc = _drop_pages([yaml.safe_load((src / "_toc.yml").read_text())], TEACHER_PAGES)[0]
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
    for page in TEACHER_PAGES:
        for path in src.glob(page + ".*"):
            path.unlink()
    config = yaml.safe_load((src / "_config.yml").read_text())
    config["title"] = f"{config.get('title', 'Book')} (student edition)"
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["hide_solutions"] = True
    # Reuse the main build's executed notebooks: same code cells -> same cache entries.
    sphinx_config["nb_execution_cache_path"] = str((root / "_build" / ".jupyter_cache").resolve())
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return secrets


def export_notebooks(src: Path, dest: Path) -> list[Path]:
    """Write every notebook under ``src`` fully stripped, outputs cleared, into ``dest`` (same layout)."""
    written = []
    for path in sorted(Path(src).rglob("*.ipynb")):
        if "_build" in path.relative_to(src).parts:
            continue
        nb = strip_notebook(nbformat.read(path, as_version=4))
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        target = Path(dest) / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def build(root: Path, out: Path, jupyter_book: str = "jupyter-book", strict: bool = True) -> list[str]:
    """Build the student edition of the book at ``root`` into ``out``/html and ``out``/notebooks.

    Returns the solution texts that were stripped (for a leak check of the output).
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    src = out / "src"
    secrets = prepare_sources(root, src)
    args = [jupyter_book, "build", str(src)] + (["-W", "-n", "--keep-going"] if strict else [])
    subprocess.run(args, check=True)
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(src / "_build" / "html", html)
    # _sources holds the built copy, whose solution-tagged cells were only marked remove-cell.
    export_notebooks(src, html / "_sources")
    notebooks = out / "notebooks"
    if notebooks.exists():
        shutil.rmtree(notebooks)
    export_notebooks(src, notebooks)
    # The build copy still holds the remove-cell sources; only student-safe files stay under ``out``.
    shutil.rmtree(src)
    return secrets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the book's root (with _toc.yml)")
    parser.add_argument("--out", default="_build/student", help="where html/ and notebooks/ go")
    parser.add_argument("--jupyter-book", default=str(Path(sys.executable).with_name("jupyter-book")))
    args = parser.parse_args(argv)
    secrets = build(Path(args.root), Path(args.out), args.jupyter_book)
    found = leaks(Path(args.out), secrets)
    for path, line in found:
        print(f"solution text in {path}: {line[:80]!r}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
