"""The student edition carries no solution: stripping unit checks, a tiny fixture book built end to end,
and, when `make student` has run, a scan of the real student output."""
import importlib.util
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("student", ROOT / "book" / "student.py")
student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(student)

SECRET = "The secret answer is forty-two because the queue absorbs the whole spike."
CELL_SECRET = "answer_value_that_students_must_not_see = 4242424242424242424242"
REPO = "course/book"
CHECK_CELL = ('from labkit.exercises import Numeric\nchain_ms = ...\n'
              'Numeric("Latency of the chain (ms)", answer=160, abs_tol=5, unit="ms",\n'
              '        mistakes=[(100, "that is the email service alone, not the chain")]).check(chain_ms)')

MARKDOWN = f"""# Exercises

```{{exercise}}
:label: ex-one
How big is the backlog?
```

````{{solution}} ex-one
:class: dropdown
{SECRET}
```python
print("nested fence stays inside the solution")
```
````

:::{{solution}} ex-one
{SECRET} (colon fence)
:::

Text after the solutions stays.
"""


def test_strip_markdown_removes_every_solution_fence_and_keeps_the_rest():
    out = student.strip_markdown(MARKDOWN)
    assert SECRET not in out and "nested fence" not in out
    assert "{exercise}" in out and "Text after the solutions stays." in out
    assert [SECRET in body for body in student.solution_texts(MARKDOWN)] == [True, True]


def test_directives_with_the_answers_class_are_stripped_like_solutions():
    text = (":::{dropdown} The answers\n:class-container: answers\nSearch: sync.\n:::\n"
            ":::{dropdown} More reading\n:open:\nkept\n:::\n")
    assert student.strip_markdown(text) == ":::{dropdown} More reading\n:open:\nkept\n:::\n"
    assert any("Search: sync." in body for body in student.solution_texts(text))


def test_links_to_teacher_pages_become_plain_text():
    text = ("See {doc}`the instructor's notebook <../classroom/instructor>`, {doc}`../book/instructors` "
            "and {doc}`the glossary <glossary>`.")
    assert student.unlink_teacher_pages(text, Path("book/intro.md")) == (
        "See the instructor's notebook, the instructors' pages and {doc}`the glossary <glossary>`.")


def test_strip_notebook_drops_tagged_cells_or_marks_them_for_removal():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(MARKDOWN),
        nbformat.v4.new_code_cell(CELL_SECRET, metadata={"tags": ["solution", "hide-input"]}),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    stripped = student.strip_notebook(nb)
    assert [c.cell_type for c in stripped.cells] == ["markdown", "code"]
    built = student.strip_notebook(nb, for_build=True)
    assert built.cells[1].metadata.tags == ["solution", "hide-input", "remove-cell"]
    assert nb.cells[1].metadata.tags == ["solution", "hide-input"]  # the input is untouched
    assert CELL_SECRET in student.notebook_secrets(nb)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="text must be a str"):
        student.strip_markdown(None)
    with pytest.raises(ValueError, match="min_len must be >= 1"):
        student.leaks(ROOT, [], min_len=0)
    with pytest.raises(ValueError, match="root must be a book directory"):
        student.prepare_sources(ROOT / "tests", ROOT / "_build" / "nowhere")


def test_teacher_pages_are_left_out_of_the_student_sources(tmp_path):
    student.prepare_sources(ROOT, tmp_path / "src")
    toc = (tmp_path / "src" / "_toc.yml").read_text()
    assert "book/instructors" in (ROOT / "_toc.yml").read_text()
    assert "book/instructors" not in toc and "chapters/01-waiting-is-a-choice" in toc
    assert not (tmp_path / "src" / "book" / "instructors.md").exists()
    assert "classroom/instructor" in (ROOT / "_toc.yml").read_text() and "classroom/instructor" not in toc
    assert (tmp_path / "src" / "classroom" / "learner.ipynb").exists()


@pytest.mark.timeout(180)
def test_fixture_book_builds_without_solutions(tmp_path):
    book = tmp_path / "book_root"
    (book / "book").mkdir(parents=True)
    (book / "chapters").mkdir()
    (book / "_config.yml").write_text(
        "title: Fixture\nexecute:\n  execute_notebooks: 'off'\n"
        f"repository:\n  url: https://github.com/{REPO}\n  branch: main\n"
        "launch_buttons:\n  binderhub_url: https://mybinder.org\n  jupyterhub_url: https://hub.example.edu\n"
        "html:\n  use_repository_button: true\n"
        "sphinx:\n  extra_extensions:\n    - sphinx_exercise\n  config:\n    hide_solutions: false\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: chapters/one\n")
    (book / "book" / "intro.md").write_text(MARKDOWN)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# One\n\n" + MARKDOWN.split("\n", 1)[1].replace("ex-one", "ex-nb")),
        nbformat.v4.new_code_cell(CELL_SECRET, metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("print('visible')"),
        nbformat.v4.new_code_cell(CHECK_CELL, metadata={"tags": ["hide-input"]}),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "chapters" / "one.ipynb")
    out = tmp_path / "student"
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    secrets = student.build(book, out, jupyter_book=jb)
    assert any(SECRET in s for s in secrets) and CELL_SECRET in secrets
    assert (out / "html" / "chapters" / "one.html").is_file()
    page = (out / "html" / "chapters" / "one.html").read_text()
    assert "visible" in page and "How big is the backlog?" in page  # the rest of the page stays
    assert (out / "notebooks" / "chapters" / "one.ipynb").is_file()
    assert student.leaks(out, secrets) == []
    # The check can fail: the same scan finds the secrets in the teacher's sources.
    assert student.leaks(book, secrets)
    assert "answer=160" in secrets and "SealedNumeric(" in (out / "notebooks" / "chapters" / "one.ipynb").read_text()
    # Every link of the edition: launch buttons on the student branch, no repository front page, no dead download.
    html = out / "html"
    assert "/v2/gh/course/book/student?" in page.replace("&amp;", "&") and "git-pull?" in page
    assert student.link_problems(html, REPO) == []
    (html / "bad.html").write_text(f'<a href="https://mybinder.org/v2/gh/{REPO}/main?urlpath=x">b</a>'
                                   f'<a href="https://github.com/{REPO}">r</a><a href="_sources/gone.ipynb">d</a>')
    assert sorted(why for _, _, why in student.link_problems(html, REPO)) == [
        "launch link not on branch 'student'", "link to the repository's front page (the default branch, with the "
        "solutions)", "relative link to a file the edition does not have"]
    assert (out / "repository" / "chapters" / "one.ipynb").is_file()


@pytest.mark.skipif(not (ROOT / "_build" / "student" / "html").is_dir(), reason="run `make student` first")
def test_built_student_edition_has_no_solution_text():
    secrets = []
    for path in (ROOT / "chapters").glob("*.ipynb"):
        secrets += student.notebook_secrets(nbformat.read(path, as_version=4))
    for path in (ROOT / "book").glob("*.md"):
        secrets += student.solution_texts(path.read_text())
    assert secrets, "the chapters have solutions to strip"
    out = ROOT / "_build" / "student"
    assert student.leaks(out, secrets) == []
    assert not list(out.rglob("instructors*"))
    repo, _ = student._repository(__import__("yaml").safe_load((ROOT / "_config.yml").read_text()))
    assert student.link_problems(out / "html", repo) == []
