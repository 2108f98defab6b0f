"""labkit.sealed: the sealed twin of a question gives the same verdicts and holds no answer."""

import nbformat
import pytest

from labkit.exercises import Choice, Numeric, Quiz
from labkit.sealed import (
    SealedChoice,
    SealedNumeric,
    notebook_question_secrets,
    question_calls,
    seal,
    seal_notebook,
    seal_source,
)

CHAIN = Numeric(
    "Availability of five 99.5 % services in a row",
    answer=0.995**5,
    rel_tol=0.001,
    mistakes=[(0.995, "that is one service; a request needs all five at once.")],
    hint="multiply",
    explanation="Five hops multiply.",
)
LATENCY = Numeric(
    "Latency of the chain (ms)", answer=160, rel_tol=0, abs_tol=5, unit="ms", mistakes=[(100, "that is email alone.")]
)
PICK = Choice(
    "Which one?",
    {"call": "It waits.", "queue": "It does not wait for the work."},
    correct="queue",
    explanation="Only the queue takes it off the path.",
)
MULTI = Choice("Which are async?", {"publish": "yes", "GET": "no", "webhook": "yes"}, correct=["publish", "webhook"])


@pytest.mark.parametrize("question", [CHAIN, LATENCY])
def test_sealed_numeric_agrees_with_the_question_away_from_the_tolerance_edge(question):
    sealed = seal(question)
    tol = max(question.rel_tol * abs(question.answer), question.abs_tol)
    for offset in (-3, -1.5, -0.9, -0.5, 0, 0.5, 0.9, 1.5, 3):
        value = question.answer + offset * tol
        assert sealed.check(value).status == question.check(value).status, value
    for wrong, _ in question.mistakes:
        assert sealed.check(wrong).message == question.check(wrong).message
    assert sealed.check(question.answer * 100).message.startswith("Right digits, wrong scale")
    assert sealed.check(...).status == "unanswered" and sealed.check("x").status == "incorrect"


def test_sealed_choice_agrees_and_decrypts_only_the_feedback_it_shows():
    for question, picks in ((PICK, ["call", "queue", "b", "nope"]), (MULTI, [["publish", "webhook"], ["GET"]])):
        sealed = seal(question)
        for pick in picks:
            assert sealed.check(pick).status == question.check(pick).status
    assert "Only the queue takes it off the path." in seal(PICK).check("queue").message


def test_sealed_source_runs_and_holds_no_answer():
    source = (
        'x = ...\nNumeric("Latency of the chain (ms)", answer=160, rel_tol=0, abs_tol=5, unit="ms",\n'
        '        mistakes=[(100, "that is email alone.")]).check(x)\n'
    )
    sealed = seal_source(source)
    assert "answer=" not in sealed and "email alone" not in sealed and "160" not in sealed
    namespace = {"Numeric": Numeric}
    exec(sealed.replace(".check(x)", ".check(162)"), namespace)
    checker = eval(sealed.split("\n", 2)[2].rsplit(".check", 1)[0], {**namespace, "SealedNumeric": SealedNumeric})
    assert checker.check(162).ok and not checker.check(100).ok


def test_questions_that_depend_on_the_run_are_left_alone():
    source = "Numeric('Measured ratio', answer=ratio_small, rel_tol=0.3).check(guess)"
    assert seal_source(source) == source
    assert question_calls(seal_source(source))


def test_notebook_constants_let_questions_seal():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("P, SLOW = 0.02, 0.5\nlab = await start()"),
            nbformat.v4.new_code_cell(
                "Numeric('Slow fraction', answer=theory.fanout_slow_probability(P, 100), abs_tol=0.04).check(guess)"
            ),
        ]
    )
    secrets = notebook_question_secrets(nb)
    assert secrets == ["answer=theory.fanout_slow_probability(P, 100)"]
    sealed = seal_notebook(nb)
    assert "SealedNumeric(" in sealed.cells[1].source and "theory" not in sealed.cells[1].source


def test_a_quiz_of_sealed_questions_shows_no_verdicts():
    page = Quiz([seal(PICK), seal(LATENCY)]).to_html()
    assert "It does not wait" not in page and "✓" not in page and "Which one?" in page
    assert isinstance(seal(PICK), SealedChoice)
    with pytest.raises(ValueError, match="question must be a Numeric or Choice"):
        seal("what?")
    with pytest.raises(ValueError, match="seal must be a token"):
        SealedNumeric("q", seal="not base64!")
