"""The table of contents, the chapter files and the intro's chapter plan agree.

Why: the book builds only files listed in _toc.yml (only_build_toc_files), so a chapter notebook added
without a TOC entry silently never appears, and a TOC entry without its file fails the build. The intro
promises ten chapters and says which are available; that promise must match what the book contains.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAPTER_ROW = re.compile(r"^\| (\d\d) \| .* \| (available|coming) \|$", re.MULTILINE)


def toc_files(node) -> list[str]:
    """Every `file:` entry in the TOC, in order, at any depth."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def chapter_notebooks() -> list[str]:
    """Committed chapter notebooks (a notebook still being written in the checkout is not in the book yet)."""
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "chapters/*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked release)
        tracked = [p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.ipynb")]
    return sorted(path.removesuffix(".ipynb") for path in tracked)


@pytest.fixture(scope="module")
def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def test_every_toc_entry_exists(toc):
    missing = [f for f in toc_files(toc) if not any((ROOT / f"{f}{ext}").is_file() for ext in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_chapter_notebook_is_in_the_toc(toc):
    listed = set(toc_files(toc))
    unlisted = [c for c in chapter_notebooks() if c not in listed]
    assert not unlisted, f"chapter notebooks missing from _toc.yml (the book would skip them): {unlisted}"


def test_parts_are_captioned_from_start_to_reference(toc):
    captions = [part["caption"] for part in toc["parts"]]
    assert captions[0] == "Start here" and captions[-1] == "Reference", captions
    assert "The core distinction" in captions
    assert toc["root"] == "book/intro"


def test_intro_chapter_plan_matches_the_toc(toc):
    rows = CHAPTER_ROW.findall((ROOT / "book" / "intro.md").read_text())
    in_toc = {re.match(r"chapters/(\d\d)-", f).group(1) for f in toc_files(toc) if f.startswith("chapters/")}
    numbers = [number for number, _ in rows]
    assert numbers == sorted(in_toc | set(numbers)), f"the intro lists chapters {numbers}, the TOC {sorted(in_toc)}"
    wrong = {number: status for number, status in rows if (status == "available") != (number in in_toc)}
    assert not wrong, f"intro says available/coming but the TOC disagrees for chapters {wrong}"
