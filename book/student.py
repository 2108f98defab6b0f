"""Student edition: the same book with every solution taken out.

Why a separate build rather than ``hide_solutions``: sphinx-exercise only hides solutions in the HTML,
while the downloadable ``.ipynb``/``.md`` sources and ``_sources/`` would still carry them. This module
copies the book's sources into ``_build/student/src``, strips them, builds that copy, and exports the
stripped notebooks for students to run.

What counts as a solution:

- a ``{solution}`` directive in markdown (a ```` ``` ```` or ``:::`` fence, any length, nested fences kept
  intact) is removed with its body, and so is any directive with the ``answers`` class (``:class: answers``
  or ``:class-container: answers``, e.g. a dropdown that lists a quiz's answers);
- a code cell tagged ``solution`` is removed (in the copy that is built it is kept, tagged ``remove-cell``,
  so the page keeps its outputs but never shows its source; ``_sources`` gets the fully stripped notebook);
- every check and quiz question with a constant answer is sealed (``labkit.sealed``): the learner's
  check gives the same feedback, but no answer, hint for a known mistake or option verdict is in clear
  text. Sealed cells differ from the chapters', so the student edition executes its own copy (its own
  jupyter-cache, ``_build/.jupyter_cache_student``): its pages show what the student notebooks show.

Usage: ``python book/student.py [--root .] [--out _build/student]`` (what ``make student`` runs).
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from labkit.sealed import notebook_question_secrets, seal_notebook

SOLUTION_TAG = "solution"
OPEN_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{solution(?:-start)?\}")
ANY_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{[\w-]+\}")
OPTION = re.compile(r"^\s*:(?P<name>[\w-]+):\s*(?P<value>.*)$")
# Any other directive (e.g. a dropdown listing a quiz's answers) with this class is stripped like a solution.
ANSWERS_CLASS = "answers"
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book", "chapters", "classroom")
# Pages for teachers only: the instructors' guide names the answers the checks expect; the classroom's
# instructor notebook runs the class (its learners get classroom/learner).
TEACHER_PAGES = ("book/instructors", "classroom/instructor")
# The branch that holds the student notebooks (built by export_repository, pushed by CI).
STUDENT_BRANCH = "student"


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _answer_directive(lines: list[str], start: int) -> bool:
    """Whether the directive opened at ``lines[start]`` carries the ``answers`` class in its options."""
    for line in lines[start + 1:]:
        option = OPTION.match(line)
        if not option:
            return False
        if option["name"] in ("class", "class-container") and ANSWERS_CLASS in option["value"].split():
            return True
    return False


def _directives(text: str):
    """(kept lines, stripped bodies) of ``text``: solutions and ``answers`` directives go to the bodies."""
    lines = text.splitlines(keepends=True)
    kept, bodies, fence, body = [], [], None, []
    for i, line in enumerate(lines):
        if fence is None:
            other = ANY_FENCE.match(line)
            match = OPEN_FENCE.match(line) or (other if other and _answer_directive(lines, i) else None)
            if match:
                fence, body = match["fence"], []
            else:
                kept.append(line)
        elif _closes(line, fence):
            bodies.append("".join(body))
            fence = None
        else:
            body.append(line)
    return kept, bodies


def strip_markdown(text: str) -> str:
    """``text`` without its ``{solution}`` and ``answers`` directives (each fence up to its close)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return "".join(_directives(text)[0])


def solution_texts(text: str) -> list[str]:
    """The bodies of the ``{solution}`` and ``answers`` directives in ``text`` (what must not reach students)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return _directives(text)[1]


def _is_solution_cell(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def strip_notebook(nb, *, for_build: bool = False):
    """A stripped copy of ``nb``: no solution directives, no ``solution``-tagged cells, questions sealed.

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
    return seal_notebook(nb)


def student_notebook(nb, assignment: str):
    """What a student gets: ``nb`` stripped and sealed, outputs cleared, marked with its ``assignment``.

    The mark (``metadata.labkit.assignment``) lets ``make grade`` tell which chapter a submission is,
    whatever its file is called.
    """
    nb = strip_notebook(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata["labkit"] = {"assignment": assignment}
    return nb


def notebook_secrets(nb) -> list[str]:
    """Texts in ``nb`` that the student edition must not contain (solutions, answers of the checks)."""
    secrets = notebook_question_secrets(nb)
    for cell in nb.cells:
        if _is_solution_cell(cell):
            secrets.append(cell.source)
        elif cell.cell_type == "markdown":
            secrets.extend(solution_texts(cell.source))
    return secrets


def _needles(secrets: list[str], min_len: int) -> set[str]:
    """What to look for: each line of a secret of at least ``min_len`` characters, and each one-line secret
    of at least 8 (an ``answer=160``, an option's feedback) whole."""
    needles = {line.strip() for s in secrets for line in s.splitlines() if len(line.strip()) >= min_len}
    return needles | {s.strip() for s in secrets if "\n" not in s.strip() and len(s.strip()) >= 8}


def leaks(out_dir: Path, secrets: list[str], min_len: int = 40) -> list[tuple[str, str]]:
    """(file, text) pairs where a secret (see :func:`_needles`) appears under ``out_dir``.

    Compared in the raw files, with JSON string escapes undone and with HTML entities undone, so HTML,
    ``.ipynb`` and ``searchindex.js`` are all covered.
    """
    if min_len < 1:
        raise ValueError(f"min_len must be >= 1, got {min_len}")
    needles = _needles(secrets, min_len)
    found = []
    for path in sorted(Path(out_dir).rglob("*")):
        if not path.is_file() or path.suffix not in {".html", ".ipynb", ".md", ".txt", ".js", ".json", ".py"}:
            continue
        raw = path.read_text(errors="replace")
        unescaped = raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        texts = (raw, unescaped, html.unescape(raw), html.unescape(unescaped))
        found += [(str(path), n) for n in needles if any(n in t for t in texts)]
    return found


DOC_ROLE = re.compile(r"\{doc\}`(?:(?P<title>[^`<]*?)\s*<(?P<target>[^>`]+)>|(?P<bare>[^`<>]+))`")


def unlink_teacher_pages(text: str, page: Path) -> str:
    """``text`` (of the page at ``page``, relative to the book) with ``{doc}`` links to the teacher pages
    turned into their plain title: the student edition leaves those pages out, and a link would break."""
    def replace(match: re.Match) -> str:
        target = match["target"] or match["bare"]
        resolved = os.path.normpath(os.path.join(os.path.dirname(str(page)), target)) if not target.startswith("/") \
            else target.lstrip("/")
        if resolved not in TEACHER_PAGES:
            return match[0]
        return match["title"] or "the instructors' pages"
    return DOC_ROLE.sub(replace, text)


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


def prepare_sources(root: Path, src: Path, branch: str = STUDENT_BRANCH, jupyterhub_url: str | None = None) -> list[str]:
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
            path.write_text(unlink_teacher_pages(strip_markdown(text), path.relative_to(src)))
    toc = _drop_pages([yaml.safe_load((src / "_toc.yml").read_text())], TEACHER_PAGES)[0]
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
    for page in TEACHER_PAGES:
        for path in src.glob(page + ".*"):
            path.unlink()
    config = yaml.safe_load((src / "_config.yml").read_text())
    (src / "_config.yml").write_text(yaml.safe_dump(student_config(config, root, branch, jupyterhub_url),
                                                    sort_keys=False, allow_unicode=True))
    return secrets


def student_config(config: dict, root: Path, branch: str = STUDENT_BRANCH, jupyterhub_url: str | None = None) -> dict:
    """The book's ``_config.yml`` for the student edition.

    Every link into the repository goes to ``branch``, which holds only student notebooks (see
    :func:`export_repository`): the Binder and JupyterHub launch buttons open it; the repository
    button, which would open the default branch with every solution, is turned off.
    """
    config = dict(config)
    config["title"] = f"{config.get('title', 'Book')} (student edition)"
    config["repository"] = {**config.get("repository", {}), "branch": branch}
    config["html"] = {**config.get("html", {}), "use_repository_button": False, "use_edit_page_button": False}
    if jupyterhub_url is not None:
        config["launch_buttons"] = {**config.get("launch_buttons", {}), "jupyterhub_url": jupyterhub_url}
    sphinx = config.setdefault("sphinx", {})
    sphinx_config = sphinx.setdefault("config", {})
    sphinx_config["hide_solutions"] = True
    # The sealed check cells differ from the chapters': the student edition keeps its own execution cache.
    sphinx_config["nb_execution_cache_path"] = str((Path(root) / "_build" / ".jupyter_cache_student").resolve())
    return config


# What the student branch holds besides the notebooks: enough to run them on Binder, a hub or a laptop.
REPOSITORY_FILES = ("pyproject.toml", "environment.yml", "postBuild", "start", "LICENSE", "LICENSE-CONTENT.md",
                    "CITATION.cff")
REPOSITORY_DIRS = ("labkit",)


def export_repository(root: Path, notebooks: Path, dest: Path) -> Path:
    """The tree of the student branch in ``dest``: the student notebooks and what runs them, no solution.

    CI pushes it to the ``student`` branch (the launch buttons' and nbgitpuller links' target).
    """
    root, dest = Path(root), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(notebooks, dest)
    for name in REPOSITORY_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    for name in (d for d in REPOSITORY_DIRS if (root / d).is_dir()):
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "README.md").write_text(
        "# Sync vs Async, Live: student notebooks\n\nGenerated from the course repository by `make student`;"
        " do not edit here. Open `chapters/` in JupyterLab (`pip install -e .`) or with the book's launch"
        " buttons.\n")
    return dest


_HREF = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def _repository(config: dict) -> tuple[str, str]:
    url = config.get("repository", {}).get("url", "").rstrip("/")
    match = re.search(r"github\.com/([^/]+/[^/]+)", url)
    return (match[1] if match else ""), url


def link_problems(html_dir: Path, repo: str, branch: str = STUDENT_BRANCH) -> list[tuple[str, str, str]]:
    """(page, link, why) for every link of the student HTML that could open something not for students.

    Followed: relative links and downloads must land on a file of the edition (which :func:`leaks` scans);
    a link into the repository ``repo`` ("org/name") must name ``branch`` (GitHub tree/blob/raw, Binder,
    nbgitpuller, Colab); a link to the repository's front page (the default branch) is refused.
    """
    html_dir = Path(html_dir)
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        for link in set(_HREF.findall(page.read_text(errors="replace"))):
            link = html.unescape(link)
            why = _link_problem(html_dir, page, link, repo, branch)
            if why:
                problems.append((str(page.relative_to(html_dir)), link, why))
    return problems


def _link_problem(html_dir: Path, page: Path, link: str, repo: str, branch: str) -> str | None:
    if link.startswith(("#", "mailto:", "data:", "javascript:")) or "{{" in link:  # template macros in _static
        return None
    if "://" not in link and not link.startswith("//"):
        target = (page.parent / link.split("#")[0].split("?")[0]).resolve()
        if link.split("#")[0] and not target.exists():
            return "relative link to a file the edition does not have"
        if target.exists() and html_dir.resolve() not in target.parents and target != html_dir.resolve():
            return "relative link out of the edition"
        return None
    from urllib.parse import parse_qs, unquote, urlsplit

    if not repo or repo.lower() not in unquote(link).lower():
        return None
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    if "repo" in query:  # nbgitpuller (JupyterHub launch button, hub links)
        return None if query.get("branch", [""])[0] == branch else f"nbgitpuller link not on branch {branch!r}"
    path = unquote(parts.path)
    tail = path.lower().split(repo.lower(), 1)[1].strip("/").split("/")
    if parts.netloc.endswith("github.com") and tail[0] in ("issues", "discussions"):
        return None
    if tail[0] in ("tree", "blob", "raw", "edit") and len(tail) > 1:
        return None if tail[1] == branch.lower() else f"repository link to branch {tail[1]!r}"
    if parts.netloc.endswith(("githubusercontent.com",)) or "/v2/gh/" in path or "colab" in parts.netloc:
        return None if tail and tail[0] == branch.lower() else f"launch link not on branch {branch!r}"
    return "link to the repository's front page (the default branch, with the solutions)"


def export_notebooks(src: Path, dest: Path) -> list[Path]:
    """Write every notebook under ``src`` fully stripped, outputs cleared, into ``dest`` (same layout)."""
    written = []
    for path in sorted(Path(src).rglob("*.ipynb")):
        if "_build" in path.relative_to(src).parts:
            continue
        nb = student_notebook(nbformat.read(path, as_version=4), path.stem)
        target = Path(dest) / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def build(root: Path, out: Path, jupyter_book: str = "jupyter-book", strict: bool = True,
          branch: str = STUDENT_BRANCH, jupyterhub_url: str | None = None) -> list[str]:
    """Build the student edition of the book at ``root`` into ``out``: ``html/``, ``notebooks/`` and
    ``repository/`` (the tree of the student branch).

    Returns the texts that were stripped or sealed (for a leak check of the output).
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    src = out / "src"
    secrets = prepare_sources(root, src, branch, jupyterhub_url)
    args = [jupyter_book, "build", str(src)] + (["-W", "-n", "--keep-going"] if strict else [])
    subprocess.run(args, check=True)
    html_dir = out / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    shutil.copytree(src / "_build" / "html", html_dir)
    # _sources holds the built copy, whose solution-tagged cells were only marked remove-cell.
    export_notebooks(src, html_dir / "_sources")
    notebooks = out / "notebooks"
    if notebooks.exists():
        shutil.rmtree(notebooks)
    export_notebooks(src, notebooks)
    export_repository(root, notebooks, out / "repository")
    # The build copy still holds the remove-cell sources; only student-safe files stay under ``out``.
    shutil.rmtree(src)
    return secrets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the book's root (with _toc.yml)")
    parser.add_argument("--out", default="_build/student", help="where html/, notebooks/ and repository/ go")
    parser.add_argument("--branch", default=STUDENT_BRANCH, help="the branch that holds the student notebooks")
    parser.add_argument("--jupyterhub-url", help="add a JupyterHub launch button (nbgitpuller) for this hub")
    parser.add_argument("--jupyter-book", default=str(Path(sys.executable).with_name("jupyter-book")))
    args = parser.parse_args(argv)
    secrets = build(Path(args.root), Path(args.out), args.jupyter_book, branch=args.branch,
                    jupyterhub_url=args.jupyterhub_url)
    found = leaks(Path(args.out), secrets)
    for path, line in found:
        print(f"solution text in {path}: {line[:80]!r}", file=sys.stderr)
    repo, _ = _repository(yaml.safe_load((Path(args.root) / "_config.yml").read_text()))
    bad_links = link_problems(Path(args.out) / "html", repo, args.branch)
    for page, link, why in bad_links:
        print(f"{page}: {link}: {why}", file=sys.stderr)
    return 1 if found or bad_links else 0


if __name__ == "__main__":
    sys.exit(main())
