"""tools/shuffle.py and tools/soak.py: the random order keeps notebooks whole, and the report counts failures."""

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from tools.shuffle import shuffled
from tools.soak import failed_tests, summary


def items(spec: dict[str, int]) -> list:
    return [SimpleNamespace(path=Path(name), name=f"{name}:{i}") for name, n in spec.items() for i in range(n)]


def test_notebook_cells_keep_their_order_and_files_stay_together():
    collected = items({"tests/a.py": 5, "chapters/01.ipynb": 8, "tests/b.py": 5, "chapters/02.ipynb": 6})
    for seed in range(20):
        order = shuffled(collected, seed)
        assert sorted(i.name for i in order) == sorted(i.name for i in collected)  # nothing lost or doubled
        paths = [i.path for i in order]
        for path in set(paths):  # a file's items stand next to each other
            where = [k for k, p in enumerate(paths) if p == path]
            assert where == list(range(where[0], where[0] + len(where)))
        for nb in ("chapters/01.ipynb", "chapters/02.ipynb"):
            cells = [i.name for i in order if str(i.path) == nb]
            assert cells == [i.name for i in collected if str(i.path) == nb]


def test_the_order_depends_on_the_seed_only():
    collected = items({"tests/a.py": 6, "tests/b.py": 6, "tests/c.py": 6})
    assert [i.name for i in shuffled(collected, 7)] == [i.name for i in shuffled(collected, 7)]
    assert len({tuple(i.name for i in shuffled(collected, seed)) for seed in range(10)}) > 1
    assert any(
        [i.name for i in shuffled(collected, seed) if str(i.path) == "tests/a.py"] != [f"tests/a.py:{k}" for k in range(6)]
        for seed in range(10)
    )  # tests inside a Python file are shuffled too


def test_failures_and_errors_are_read_from_junit_xml(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.a" name="ok"/>'
        '<testcase classname="tests.a" name="bad"><failure message="x">line 1\nline 2\nassert 1 == 2</failure>'
        '</testcase>'
        '<testcase classname="chapters.01-x.ipynb" name="Cell 3"><error message="y"/></testcase>'
        '<testcase classname="tests.b" name="skipped"><skipped/></testcase>'
        '</testsuite></testsuites>'
    )
    assert failed_tests(report) == {"tests.a::bad": "line 1\nline 2\nassert 1 == 2", "chapters.01-x.ipynb::Cell 3": "y"}
    assert failed_tests(report, lines=1)["tests.a::bad"] == "assert 1 == 2"  # the end of a traceback says why


def test_the_summary_counts_per_condition():
    text = summary({"quiet": Counter({"t::a": 1}), "busy": Counter({"t::a": 2, "t::b": 1})}, {"quiet": 5, "busy": 5})
    assert "t::a" in text and "1/5" in text and "2/5" in text
    assert text.splitlines()[-1].startswith("2 tests failed at least once; 4 failures")
