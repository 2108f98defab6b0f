"""Checks that tell a learner *what* went wrong, and quizzes that work live and in the static book.

Why: "wrong" teaches little; "you added the availabilities instead of multiplying them" teaches the
lesson. A :class:`Numeric` question knows the typical wrong answers (each with a hint), and also catches
unit slips (ms vs s, percent vs fraction) on its own; a :class:`Choice` question has feedback for every
option. An unanswered question (``None`` or ``...``, the placeholder the notebooks ship with) gets a
friendly prompt and never raises, so notebooks run cleanly under nbval before anyone answers.

    q = Numeric("Availability of three services in a chain, each 99.9 %?", answer=0.999 ** 3, rel_tol=0.0002,
                mistakes=[(0.999 * 3, "you added the availabilities; in a chain they multiply"),
                          (0.999, "that is one service; every hop must be up at once")])
    q.check(...)          # -> "Not answered yet: ..."
    q.check(0.997)        # -> "Correct! ..."

:func:`quiz` shows several questions with answer boxes and Check buttons in a live kernel, and as static
HTML (options and feedback in expandable ``<details>``, no JavaScript) in the built book (detected from the
process that started the kernel) or when the environment variable ``LABKIT_STATIC`` is set.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from labkit._validate import non_negative

__all__ = ["Feedback", "Numeric", "Choice", "Quiz", "quiz"]

_UNANSWERED = "Not answered yet: replace the `...` with your answer and run the cell again."
_COLORS = {"correct": "#009E73", "incorrect": "#D55E00", "unanswered": "#0072B2"}
_SYMBOLS = {"correct": "✓", "incorrect": "✗", "unanswered": "…"}
# Unit slips worth naming: (factor, what the learner probably did)
_UNIT_SLIPS = ((1000.0, "milliseconds vs seconds?"), (100.0, "a percentage vs a fraction?"))


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: ``status`` is "correct", "incorrect" or "unanswered"."""

    status: str
    message: str

    @classmethod
    def unanswered(cls) -> Feedback:
        return cls("unanswered", _UNANSWERED)

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        return f"{_SYMBOLS[self.status]} {self.message}"

    def _repr_html_(self) -> str:
        color = _COLORS[self.status]
        return (
            f"<div style='border-left:4px solid {color};padding:4px 10px;margin:4px 0'>"
            f"<b style='color:{color}'>{_SYMBOLS[self.status]}</b> {html.escape(self.message)}</div>"
        )


def unanswered(response: Any) -> bool:
    """True for the placeholders a notebook ships with (``...``, ``None``, a blank string)."""
    return response is None or response is ... or (isinstance(response, str) and not response.strip())


def read_number(response: Any, unit: str = "") -> float | Feedback:
    """The number in a learner's ``response``, or the feedback to give instead (unanswered, unreadable).
    Shared by :class:`Numeric` and its sealed twin, so both read an answer the same way."""
    if unanswered(response):
        return Feedback.unanswered()
    return parse_number(response, unit)


def format_value(value: float, unit: str = "") -> str:
    """``value`` to four significant digits, with its unit."""
    return f"{value:.4g}{' ' + unit if unit else ''}"


def parse_number(response: Any, unit: str = "") -> float | Feedback:
    """``response`` as a finite float, or the Feedback that says why it is not one."""
    try:
        if isinstance(response, bool):
            raise TypeError
        value = float(response)
    except (TypeError, ValueError):
        return Feedback("incorrect", f"Expected a number{' in ' + unit if unit else ''}, got {response!r}.")
    if not math.isfinite(value):
        return Feedback("incorrect", f"Expected a finite number, got {response!r}.")
    return value


def parse_picks(options: Sequence[str], response: Any) -> list[str] | Feedback:
    """The options ``response`` picks (one, or a list), or the Feedback for a blank or unknown pick."""
    if unanswered(response):
        return Feedback.unanswered()
    # read an iterable once: a generator of picks is as good an answer as a list
    picks = (
        [response] if isinstance(response, str) else list(response) if isinstance(response, Iterable) else [response]
    )
    if not picks:
        return Feedback.unanswered()
    chosen = []
    for pick in picks:
        option = resolve_option(options, pick)
        if option is None:
            letters = ", ".join(f"{chr(97 + i)}) {k}" for i, k in enumerate(options))
            return Feedback("incorrect", f"{pick!r} is not one of the options: {letters}.")
        chosen.append(option)
    return chosen


def resolve_option(options: Sequence[str], picked: Any) -> str | None:
    """An option from its exact text, its text in any case, or its letter (a, b, c...)."""
    if not isinstance(picked, str):
        return None
    keys = list(options)
    lowered = {k.lower(): k for k in keys}
    p = picked.strip()
    if p in keys:
        return p
    if p.lower() in lowered:
        return lowered[p.lower()]
    if len(p) == 1 and p.isalpha() and ord(p.lower()) - 97 < len(keys):
        return keys[ord(p.lower()) - 97]
    return None


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


class Numeric:
    """A question with a numeric answer, a tolerance and hints for known wrong answers.

    ``rel_tol`` is a fraction of the answer, ``abs_tol`` an absolute amount (the larger one applies);
    ``mistakes`` lists ``(wrong value, hint)``; ``unit`` is shown in the feedback.
    """

    def __init__(
        self,
        prompt: str,
        answer: float,
        *,
        rel_tol: float = 0.05,
        abs_tol: float = 0.0,
        unit: str = "",
        mistakes: Iterable[tuple[float, str]] = (),
        hint: str | None = None,
        explanation: str | None = None,
    ) -> None:
        self.prompt: str = _text("prompt", prompt)
        if isinstance(answer, bool) or not isinstance(answer, Real) or not math.isfinite(answer):
            raise ValueError(f"answer must be a finite number, got {answer!r}")
        self.answer: float = float(answer)
        self.rel_tol: float = non_negative("rel_tol", rel_tol)
        self.abs_tol: float = non_negative("abs_tol", abs_tol)
        self.unit: str = unit
        self.mistakes: list[tuple[float, str]] = []
        for i, item in enumerate(mistakes):
            if not (
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Real) and isinstance(item[1], str)
            ):
                raise ValueError(f"mistakes[{i}] must be a (wrong value, hint) tuple, got {item!r}")
            self.mistakes.append((float(item[0]), item[1]))
        self.hint: str | None = hint
        self.explanation: str | None = explanation

    def _close(self, value: float, target: float) -> bool:
        return math.isclose(value, target, rel_tol=self.rel_tol, abs_tol=self.abs_tol)

    def _fmt(self, value: float) -> str:
        return format_value(value, self.unit)

    def check(self, response: Any) -> Feedback:
        """Judge ``response`` (a number, or a string holding one)."""
        value = read_number(response, self.unit)
        if isinstance(value, Feedback):
            return value
        if self._close(value, self.answer):
            tail = f" {self.explanation}" if self.explanation else ""
            return Feedback("correct", f"Correct! {self._fmt(value)} matches {self._fmt(self.answer)}.{tail}")
        for wrong, why in self.mistakes:
            if self._close(value, wrong):
                return Feedback("incorrect", f"Not quite: {why}")
        for factor, slip in _UNIT_SLIPS:
            if self.answer and any(self._close(value, self.answer * f) for f in (factor, 1 / factor)):
                return Feedback("incorrect", f"Right digits, wrong scale: check your units ({slip})")
        direction = "high" if value > self.answer else "low"
        tail = f" Hint: {self.hint}" if self.hint else ""
        return Feedback("incorrect", f"Not quite: {self._fmt(value)} is too {direction}.{tail}")

    def solution_html(self) -> str:
        tol = max(self.rel_tol * abs(self.answer), self.abs_tol)
        text = f"{self._fmt(self.answer)} (accepted within ±{tol:.3g})"
        if self.explanation:
            text += f". {self.explanation}"
        return html.escape(text)

    def static_html(self) -> str:
        """The question's part of a static quiz: the answer behind a ``<details>``."""
        return f"<details><summary>Show the answer</summary>{self.solution_html()}</details>"


class Choice:
    """A multiple-choice question with feedback for every option.

    ``options``: ``{option text: feedback shown when it is picked}``; ``correct``: the right option, or a
    list of them (then the learner must pick exactly that set).
    """

    def __init__(
        self,
        prompt: str,
        options: Mapping[str, str],
        correct: str | Sequence[str],
        *,
        explanation: str | None = None,
    ):
        self.prompt = _text("prompt", prompt)
        if not isinstance(options, Mapping) or len(options) < 2:
            raise ValueError(f"options must be a dict of at least two {{option: feedback}}, got {options!r}")
        self.options = {_text("option", k): _text(f"feedback for {k!r}", v) for k, v in options.items()}
        wanted = [correct] if isinstance(correct, str) else list(correct)
        unknown = [c for c in wanted if c not in self.options]
        if not wanted or unknown:
            raise ValueError(f"correct must be one or more of the options {list(self.options)}, got {correct!r}")
        self.correct = frozenset(wanted)
        self.multiple = not isinstance(correct, str)
        self.explanation = explanation

    def check(self, response: Any) -> Feedback:
        """Judge ``response``: an option (text or letter), or a list of them for a multi-answer question."""
        chosen = parse_picks(list(self.options), response)
        if isinstance(chosen, Feedback):
            return chosen
        notes = " ".join(self.options[c] for c in dict.fromkeys(chosen))
        if set(chosen) == self.correct:
            tail = f" {self.explanation}" if self.explanation else ""
            return Feedback("correct", f"Correct! {notes}{tail}")
        if self.multiple and set(chosen) < self.correct:
            return Feedback("incorrect", f"Partly: {notes} Some right answers are still missing.")
        return Feedback("incorrect", f"Not quite: {notes}")

    def solution_html(self) -> str:
        rows = "".join(
            f"<li><b>{'✓' if k in self.correct else '✗'}</b> {html.escape(k)}: {html.escape(v)}</li>"
            for k, v in self.options.items()
        )
        return f"<ul>{rows}</ul>"

    def static_html(self) -> str:
        """The question's part of a static quiz: each option with its verdict behind a ``<details>``."""
        rows = "".join(
            f"<li><details><summary>{html.escape(k)}</summary>"
            f"{'✓' if k in self.correct else '✗'} {html.escape(v)}</details></li>"
            for k, v in self.options.items()
        )
        return f"<ul>{rows}</ul>"


# Numeric, Choice, or their sealed twins (labkit.sealed): anything with prompt, check() and static_html();
# a question with ``options`` is shown as a choice.
Question = Any


class Quiz:
    """Several questions shown together: live widgets in a kernel, static HTML elsewhere."""

    def __init__(self, questions: Sequence[Question], title: str = "Check your understanding"):
        if not questions or not all(
            callable(getattr(q, "check", None)) and callable(getattr(q, "static_html", None)) for q in questions
        ):
            raise ValueError(f"questions must be a non-empty list of Numeric/Choice questions, got {questions!r}")
        self.questions = list(questions)
        self.title = _text("title", title)

    def check(self, responses: Sequence[Any]) -> list[Feedback]:
        """Judge one response per question (``...`` for the ones not answered yet)."""
        if len(responses) != len(self.questions):
            raise ValueError(
                f"responses must have one entry per question ({len(self.questions)}), got {len(responses)}"
            )
        return [q.check(r) for q, r in zip(self.questions, responses)]

    def to_html(self) -> str:
        """The static version: each question with its options (and, unless sealed, the answer in ``<details>``)."""
        parts = [f"<div class='labkit-quiz'><h4>{html.escape(self.title)}</h4><ol>"]
        for q in self.questions:
            parts.append(f"<li><p>{html.escape(q.prompt)}</p>{q.static_html()}</li>")
        parts.append("</ol></div>")
        return "".join(parts)

    def widget(self) -> Any:
        """The live version: an input and a Check button per question, feedback shown below it."""
        import ipywidgets as w

        boxes = [w.HTML(f"<h4>{html.escape(self.title)}</h4>")]
        for i, q in enumerate(self.questions, 1):
            if hasattr(q, "options"):
                field = (
                    w.SelectMultiple(options=list(q.options), rows=len(q.options))
                    if q.multiple
                    else w.RadioButtons(options=list(q.options), value=None)
                )
            else:
                field = w.Text(placeholder=f"your answer{' in ' + q.unit if q.unit else ''}")
            button = w.Button(description="Check")
            verdict = w.HTML()

            def judge(_b: Any, q: Question = q, field: Any = field, verdict: Any = verdict) -> None:
                verdict.value = q.check(field.value)._repr_html_()

            button.on_click(judge)
            boxes += [w.HTML(f"<p><b>{i}.</b> {html.escape(q.prompt)}</p>"), field, button, verdict]
        return w.VBox(boxes)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.widget()._repr_mimebundle_() if _live_kernel() else {}
        # text/html too when live: front ends that cannot show widgets (and the book) fall back to it
        bundle.update({"text/plain": f"{self.title} ({len(self.questions)} questions)", "text/html": self.to_html()})
        return bundle


def quiz(questions: Sequence[Question], title: str = "Check your understanding") -> Quiz:
    """Show ``questions`` as a quiz (display the returned object: make it the cell's last expression)."""
    return Quiz(questions, title)


def _live_kernel() -> bool:
    """True in a Jupyter kernel whose front end can run widget callbacks.

    False outside a kernel, when ``LABKIT_STATIC`` is set, and when the kernel was started by a book build
    (jupyter-book / sphinx-build): the page would embed the widgets' state, but no kernel would answer
    their Check buttons, so the book gets the static quiz instead.
    """
    if os.environ.get("LABKIT_STATIC"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None and not _started_by_book_build()


def _started_by_book_build() -> bool:
    import psutil

    try:
        for proc in psutil.Process().parents()[:3]:
            if any(arg.endswith(("jupyter-book", "sphinx-build")) or "jupyter_book" in arg for arg in proc.cmdline()):
                return True
    except psutil.Error:
        pass
    return False
