"""make hub-links: nbgitpuller links to the student branch, one per chapter."""
import importlib.util
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("hub_links", ROOT / "book" / "hub_links.py")
hub_links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hub_links)


def test_every_chapter_gets_a_link_to_the_student_branch(tmp_path):
    out = tmp_path / "links.md"
    assert hub_links.main(["--hub", "https://hub.example.edu/", "--root", str(ROOT), "--out", str(out)]) == 0
    urls = [line.split("](")[1].rstrip(")\n") for line in out.read_text().splitlines() if line.startswith("- [")]
    assert len(urls) == len(list((ROOT / "chapters").glob("*.ipynb"))) + (ROOT / "classroom" / "learner.ipynb").exists()
    first = urlsplit(urls[0])
    query = parse_qs(first.query)
    assert first.netloc == "hub.example.edu" and first.path == "/hub/user-redirect/git-pull"
    assert query["branch"] == ["student"] and query["urlpath"][0].startswith("lab/tree/")
    assert query["urlpath"][0].endswith("/chapters/01-waiting-is-a-choice.ipynb")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="hub must be an http"):
        hub_links.hub_link("hub.example.edu", "https://github.com/a/b", "x.ipynb")
    with pytest.raises(ValueError, match="repo_url must be a GitHub"):
        hub_links.hub_link("https://h", "https://example.com/a", "x.ipynb")
