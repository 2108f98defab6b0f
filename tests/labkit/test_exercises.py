"""labkit.exercises: specific feedback, never raising on a placeholder answer."""

import pytest

from labkit.exercises import Choice, Feedback, Numeric, Quiz, quiz

CHAIN = Numeric(
    "Availability of four services in a chain, each 99 %?",
    answer=0.99**4,
    rel_tol=0.002,
    mistakes=[
        (0.99 * 4, "you added the availabilities; in a chain they multiply"),
        (0.99, "that is one service; every hop must be up at once"),
    ],
    hint="every hop must be up at the same time",
    explanation="0.99^4 ≈ 0.961.",
)
LATENCY = Numeric("Mean latency of the chain?", answer=0.2, rel_tol=0.05, unit="s")
PATTERN = Choice(
    "The email service is down. What should the checkout do?",
    {
        "Call it synchronously and retry": "Then every checkout waits on email: temporal coupling.",
        "Publish an event and return": "The order completes; email catches up when it recovers.",
        "Return 500": "The customer loses the order because of an email.",
    },
    correct="Publish an event and return",
)
MULTI = Choice(
    "Which are asynchronous?",
    {"AMQP publish": "yes", "HTTP GET": "no", "webhook callback": "yes"},
    correct=["AMQP publish", "webhook callback"],
)


@pytest.mark.parametrize("placeholder", [None, ..., "", "  "])
def test_placeholders_get_a_prompt_not_an_exception(placeholder):
    for q in (CHAIN, PATTERN, MULTI):
        fb = q.check(placeholder)
        assert fb.status == "unanswered" and not fb.ok and "Not answered yet" in repr(fb)
    assert MULTI.check([]).status == "unanswered"


def test_numeric_correct_within_tolerance_and_explained():
    fb = CHAIN.check(0.9606)
    assert fb.ok and "Correct" in fb.message and "0.961" in fb.message
    assert CHAIN.check("0.9606").ok  # a number typed as text


def test_numeric_names_the_typical_mistake():
    assert "added the availabilities" in CHAIN.check(3.96).message
    assert "one service" in CHAIN.check(0.99).message
    fb = CHAIN.check(0.5)
    assert fb.status == "incorrect" and "too low" in fb.message and "every hop" in fb.message


def test_numeric_catches_unit_slips():
    assert "milliseconds vs seconds" in LATENCY.check(200).message
    assert "percentage vs a fraction" in CHAIN.check(96.06).message
    assert "Expected a number in s" in LATENCY.check("fast").message
    assert LATENCY.check(True).status == "incorrect"
    assert LATENCY.check(float("nan")).status == "incorrect"


def test_choice_gives_per_option_feedback_and_accepts_letters_and_case():
    assert PATTERN.check("Publish an event and return").ok
    assert PATTERN.check("b").ok and PATTERN.check("PUBLISH AN EVENT AND RETURN").ok
    wrong = PATTERN.check("a")
    assert not wrong.ok and "temporal coupling" in wrong.message
    unknown = PATTERN.check("Use gRPC")
    assert "not one of the options" in unknown.message and "b) Publish" in unknown.message


def test_multi_answer_choice_needs_the_exact_set():
    assert MULTI.check(["AMQP publish", "webhook callback"]).ok
    assert MULTI.check(["a", "c"]).ok
    assert MULTI.check(["AMQP publish"]).message.startswith("Partly")
    assert not MULTI.check(["a", "b"]).ok
    assert MULTI.check(pick for pick in ["a", "c"]).ok  # a generator is read once, not emptied by a check
    assert MULTI.check([]).status == "unanswered"


def test_feedback_renders_as_text_and_html():
    fb = Feedback("incorrect", "x < y")
    assert repr(fb) == "✗ x < y" and "x &lt; y" in fb._repr_html_()


def test_quiz_is_static_html_outside_a_kernel():
    q = quiz([CHAIN, PATTERN, MULTI], title="Chapter 2")
    bundle = q._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    html = bundle["text/html"]
    assert html.count("<details>") == 1 + 3 + 3 and "temporal coupling" in html and "<script" not in html
    assert [f.status for f in q.check([0.9606, "a", ...])] == ["correct", "incorrect", "unanswered"]


def test_quiz_widget_checks_answers_on_click():
    box = Quiz([CHAIN, PATTERN]).widget()
    groups = [box.children[i : i + 4] for i in range(1, len(box.children), 4)]  # prompt, field, button, verdict
    fields, buttons, verdicts = ([g[k] for g in groups] for k in (1, 2, 3))
    fields[0].value = "3.96"
    fields[1].value = "Publish an event and return"
    for b in buttons:
        b.click()
    assert "added the availabilities" in verdicts[0].value and "Correct" in verdicts[1].value


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: Numeric("", 1.0), "prompt"),
        (lambda: Numeric("q", float("inf")), "answer"),
        (lambda: Numeric("q", 1.0, rel_tol=-0.1), "rel_tol"),
        (lambda: Numeric("q", 1.0, abs_tol=-1), "abs_tol"),
        (lambda: Numeric("q", 1.0, mistakes=[(2.0,)]), "mistakes"),
        (lambda: Choice("q", {"a": "x"}, "a"), "options"),
        (lambda: Choice("q", {"a": "x", "b": "y"}, "c"), "correct"),
        (lambda: Choice("q", {"a": "x", "b": ""}, "a"), "feedback"),
        (lambda: Quiz([]), "questions"),
        (lambda: Quiz([CHAIN]).check([1, 2]), "responses"),
    ],
)
def test_invalid_arguments_name_the_argument(build, argument):
    with pytest.raises(ValueError, match=argument):
        build()


def test_quiz_in_a_live_kernel_adds_the_widget_unless_static_is_asked(monkeypatch):
    from labkit import exercises

    monkeypatch.setattr(exercises, "_started_by_book_build", lambda: False)

    class Kernel:  # what get_ipython() returns inside ipykernel: a shell with a kernel
        kernel = object()

    monkeypatch.setattr("IPython.get_ipython", lambda: Kernel())
    monkeypatch.delenv("LABKIT_STATIC", raising=False)
    bundle = quiz([CHAIN])._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
    monkeypatch.setenv("LABKIT_STATIC", "1")
    assert "application/vnd.jupyter.widget-view+json" not in quiz([CHAIN])._repr_mimebundle_()
    monkeypatch.delenv("LABKIT_STATIC")
    monkeypatch.setattr(exercises, "_started_by_book_build", lambda: True)
    assert "application/vnd.jupyter.widget-view+json" not in quiz([CHAIN])._repr_mimebundle_()


def test_this_test_process_is_not_a_book_build():
    from labkit import exercises

    assert exercises._started_by_book_build() is False
