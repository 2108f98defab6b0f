"""Releases: one version everywhere (footer, package, citation, changelog), workflows that parse, and the
publish script run for real against a local git remote (the part of the workflows that can run here)."""
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PUBLISH = ROOT / ".ci" / "publish"


def test_the_version_is_the_same_in_the_footer_package_citation_and_changelog():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert f"v{version}<" in footer
    assert str(yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"]) == version
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert released and released[0] == version


def test_licences_are_shipped():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Attribution 4.0 International" in (ROOT / "LICENSE-CONTENT.md").read_text()
    names = {p.name for p in (ROOT / "book" / "_vendor" / "LICENSES").iterdir()}
    assert {"requirejs-MIT.txt", "html-manager-BSD-3-Clause.txt", "mathjax-Apache-2.0.txt",
            "font-awesome-OFL-1.1.txt", "plotly-MIT.txt"} <= names


def test_workflows_publish_both_editions_and_each_release_under_its_own_path():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert release[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as True
    ci_steps = " ".join(str(s.get("run", "")) for job in ci["jobs"].values() for s in job.get("steps", []))
    release_steps = " ".join(str(s.get("run", "")) for job in release["jobs"].values() for s in job["steps"])
    assert ".ci/publish pages . _build/html _build/student/html" in ci_steps
    assert ".ci/publish branch student _build/student/repository" in ci_steps
    assert '.ci/publish pages "$GITHUB_REF_NAME" _build/html _build/student/html' in release_steps
    assert "make student" in release_steps and "make book" in release_steps


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _site(tmp_path, name, text):
    for edition in ("full", "student"):
        (tmp_path / name / edition).mkdir(parents=True)
        (tmp_path / name / edition / "index.html").write_text(f"{text} {edition}")
    return tmp_path / name / "full", tmp_path / name / "student"


def test_publish_keeps_released_versions_and_replaces_the_rest(tmp_path):
    origin, repo = tmp_path / "origin.git", tmp_path / "repo"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("course")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    _git(repo, "remote", "add", "origin", str(origin))

    def publish(*args):
        subprocess.run(["bash", str(PUBLISH), *map(str, args)], cwd=repo, check=True, capture_output=True)

    first = _site(tmp_path, "a", "main-1")
    (first[0] / "old-page.html").write_text("gone next time")
    publish("pages", ".", *first)
    publish("pages", "v1.0.0", *_site(tmp_path, "b", "release-1.0.0"))
    publish("pages", ".", *_site(tmp_path, "c", "main-2"))
    tree = set(_git(origin, "ls-tree", "-r", "--name-only", "gh-pages").split())
    assert {"index.html", "student/index.html", "v1.0.0/index.html", "v1.0.0/student/index.html"} <= tree
    assert "old-page.html" not in tree
    assert _git(origin, "show", "gh-pages:v1.0.0/student/index.html") == "release-1.0.0 student"
    assert _git(origin, "show", "gh-pages:index.html") == "main-2 full"
    (tmp_path / "tree" / "chapters").mkdir(parents=True)
    (tmp_path / "tree" / "chapters" / "01.ipynb").write_text("{}")
    publish("branch", "student", tmp_path / "tree")
    assert _git(origin, "ls-tree", "-r", "--name-only", "student").split() == ["chapters/01.ipynb"]
