"""nbgitpuller links that open each student notebook on a JupyterHub (``make hub-links HUB=https://...``).

Why nbgitpuller: a link clones the student branch into the learner's home on first click and merges
new commits on later clicks without overwriting what the learner changed, so homes can persist for a
whole term. The links target the ``student`` branch (``book/student.py`` builds it), never the branch
with the solutions.

Usage: ``python book/hub_links.py --hub https://hub.example.edu [--root .] [--out _build/hub-links.md]``
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import yaml

STUDENT_BRANCH = "student"


def hub_link(hub: str, repo_url: str, path: str, branch: str = STUDENT_BRANCH, interface: str = "lab") -> str:
    """The nbgitpuller link that opens ``path`` (relative to the repository) of ``repo_url``@``branch``."""
    parts = urlsplit(hub)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"hub must be an http(s) URL such as https://hub.example.edu, got {hub!r}")
    match = re.search(r"github\.com/[^/]+/([^/]+?)(?:\.git)?/?$", repo_url)
    if not match:
        raise ValueError(f"repo_url must be a GitHub repository URL, got {repo_url!r}")
    if interface not in ("lab", "tree"):
        raise ValueError(f"interface must be 'lab' or 'tree', got {interface!r}")
    folder = match[1]  # nbgitpuller clones into a folder named after the repository
    urlpath = f"{interface}/tree/{folder}/{path}" if interface == "lab" else f"tree/{folder}/{path}"
    query = urlencode({"repo": repo_url, "branch": branch, "urlpath": urlpath})
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def links(root: Path, hub: str, branch: str = STUDENT_BRANCH) -> list[tuple[str, str]]:
    """(name, link) for every chapter of the book at ``root``, and the classroom's learner notebook."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text())
    repo_url = config.get("repository", {}).get("url", "")
    paths = sorted(Path(root, "chapters").glob("*.ipynb")) + sorted(Path(root, "classroom").glob("learner.ipynb"))
    return [(p.stem, hub_link(hub, repo_url, p.relative_to(root).as_posix(), branch)) for p in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", required=True, help="the JupyterHub's URL, e.g. https://hub.example.edu")
    parser.add_argument("--root", default=".")
    parser.add_argument("--branch", default=STUDENT_BRANCH)
    parser.add_argument("--out", default="_build/hub-links.md")
    args = parser.parse_args(argv)
    rows = links(Path(args.root), args.hub, args.branch)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Open the course on your JupyterHub\n\n" + "".join(f"- [{c}]({u})\n" for c, u in rows))
    print(f"{len(rows)} links -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
