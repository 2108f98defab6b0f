"""Sealed questions: a learner's check that gives the same feedback as the teacher's, with no answer in it.

Why: a check cell such as ``Numeric("...", answer=42, abs_tol=5).check(my_ms)`` teaches well, but a
student notebook that carries it carries the answer in clear text. :func:`seal` turns a
:class:`~labkit.exercises.Numeric` or :class:`~labkit.exercises.Choice` into an object with the same
``check`` that keeps only salted hashes and encrypted feedback:

- a numeric answer becomes the hashes of the grid cells (``quantum`` wide, a quarter of the tolerance)
  that overlap the accepted interval; a response is hashed the same way and matched. Known mistakes and
  unit slips are sealed the same way, each hint encrypted with a key only its own grid cells give;
- a choice keeps its options (the learner must see them) and the hash of the correct set; each option's
  feedback is encrypted with a key derived from that option.

What this protects and what not: nothing in the notebook reads as the answer, and the sealed form tells
nothing that running the check with every option (or every grid cell) would not; a learner who does
that has found the answer by trial, which a feedback check always allows. Grading does not rely on it:
the hidden checks of ``grading/`` hold the answers and run outside the student's notebook.

:func:`seal_source` rewrites a cell's source: every ``Numeric(...)``/``Choice(...)`` whose arguments are
constants is replaced by its sealed form; one that depends on the run (``answer=ratio_small``) is left
as it is, because its answer is measured in the learner's own kernel, not written in the notebook.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from labkit import theory
from labkit.exercises import _UNIT_SLIPS, Choice, Feedback, Numeric, format_value, parse_picks, read_number

__all__ = [
    "SealedNumeric",
    "SealedChoice",
    "seal",
    "seal_source",
    "seal_notebook",
    "notebook_constants",
    "notebook_question_secrets",
    "question_calls",
    "question_secrets",
]

_QUESTION_CLASSES = {"Numeric": Numeric, "Choice": Choice}
# What a question's constant arguments may use: the pure formulas of labkit.theory and a few builtins.
_SAFE_NAMES = {
    "theory": theory,
    "round": round,
    "min": min,
    "max": max,
    "abs": abs,
    "sum": sum,
    "len": len,
    "dict": dict,
    "zip": zip,
}
_CELLS_PER_TOLERANCE = 4  # grid cells per tolerance: the accepted range widens by at most a quarter


def _key(salt: str, *parts: Any) -> bytes:
    return hashlib.sha256("\x1f".join([salt, *map(str, parts)]).encode()).digest()


def _tag(salt: str, *parts: Any) -> str:
    return _key(salt, "tag", *parts).hex()[:20]


def _encrypt(key: bytes, text: str) -> str:
    data = text.encode()
    stream = b"".join(hashlib.sha256(key + i.to_bytes(4, "big")).digest() for i in range(len(data) // 32 + 1))
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream))).decode()


def _decrypt(key: bytes, token: str) -> str:
    data = base64.b64decode(token)
    stream = b"".join(hashlib.sha256(key + i.to_bytes(4, "big")).digest() for i in range(len(data) // 32 + 1))
    return bytes(a ^ b for a, b in zip(data, stream)).decode()


def _pack(obj: dict) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def _unpack(name: str, token: Any) -> dict:
    try:
        return json.loads(base64.b64decode(token))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a token made by labkit.sealed.seal, got {token!r}") from exc


class SealedNumeric:
    """A :class:`~labkit.exercises.Numeric` with its answer, mistakes and explanation sealed."""

    def __init__(self, prompt: str, *, unit: str = "", hint: str | None = None, seal: str):
        self.prompt, self.unit, self.hint = prompt, unit, hint
        data = _unpack("seal", seal)
        self._salt, self._ranges = data["salt"], data["ranges"]

    def _fmt(self, value: float) -> str:
        return format_value(value, self.unit)

    def check(self, response: Any) -> Feedback:
        """Judge ``response`` as the unsealed question would, without knowing its answer."""
        value = read_number(response, self.unit)
        if isinstance(value, Feedback):
            return value
        for i, entry in enumerate(self._ranges):  # entry 0 is the answer, then mistakes and unit slips
            cell = math.floor(value / entry["quantum"])
            sealed = entry["cells"].get(_tag(self._salt, i, cell))
            if sealed is not None:
                message = _decrypt(_key(self._salt, "text", i, cell), sealed)
                if i == 0:
                    return Feedback("correct", f"Correct! {self._fmt(value)} is within the accepted range.{message}")
                return Feedback("incorrect", message)
        tail = f" Hint: {self.hint}" if self.hint else ""
        return Feedback("incorrect", f"Not quite: {self._fmt(value)} is not in the accepted range.{tail}")

    def static_html(self) -> str:
        return "<p><i>Run the notebook and check your answer there.</i></p>"


class SealedChoice:
    """A :class:`~labkit.exercises.Choice` with its correct set and per-option feedback sealed."""

    def __init__(self, prompt: str, options: Sequence[str], *, multiple: bool = False, seal: str):
        self.prompt, self.options, self.multiple = prompt, list(options), multiple
        data = _unpack("seal", seal)
        self._salt, self._correct, self._feedback = data["salt"], data["correct"], data["feedback"]
        self._explanation = data.get("explanation")

    def _digest(self, chosen: Iterable[str]) -> str:
        return _tag(self._salt, "correct", *sorted(set(chosen)))

    def check(self, response: Any) -> Feedback:
        """Judge ``response``: an option (text or letter), or a list of them for a multi-answer question."""
        chosen = parse_picks(self.options, response)
        if isinstance(chosen, Feedback):
            return chosen
        notes = " ".join(_decrypt(_key(self._salt, "option", c), self._feedback[c]) for c in dict.fromkeys(chosen))
        digest = self._digest(chosen)
        if digest == self._correct:
            tail = ""
            if self._explanation:
                tail = " " + _decrypt(_key(self._salt, "explanation", *sorted(set(chosen))), self._explanation)
            return Feedback("correct", f"Correct! {notes}{tail}")
        return Feedback("incorrect", f"Not quite: {notes}")

    def static_html(self) -> str:
        import html

        rows = "".join(f"<li>{html.escape(k)}</li>" for k in self.options)
        return f"<ul>{rows}</ul><p><i>Run the notebook and check your answer there.</i></p>"


def _salt_for(question: Numeric | Choice, salt: str | None) -> str:
    return salt or hashlib.sha256(question.prompt.encode()).hexdigest()[:16]


def _seal_numeric(q: Numeric, salt: str) -> SealedNumeric:
    tol = max(q.rel_tol * abs(q.answer), q.abs_tol)
    explanation = f" {q.explanation}" if q.explanation else ""
    targets = [(q.answer, tol, explanation)]
    targets += [(wrong, max(q.rel_tol * abs(wrong), q.abs_tol), f"Not quite: {why}") for wrong, why in q.mistakes]
    if q.answer:
        targets += [
            (q.answer * f, tol * f, f"Right digits, wrong scale: check your units ({slip})")
            for factor, slip in _UNIT_SLIPS
            for f in (factor, 1 / factor)
        ]
    ranges = []
    for i, (centre, width, text) in enumerate(targets):
        quantum = width / _CELLS_PER_TOLERANCE if width > 0 else max(abs(centre) * 1e-9, 1e-12)
        low, high = math.floor((centre - width) / quantum), math.floor((centre + width) / quantum)
        cells = {_tag(salt, i, c): _encrypt(_key(salt, "text", i, c), text) for c in range(low, high + 1)}
        ranges.append({"quantum": quantum, "cells": cells})
    return SealedNumeric(q.prompt, unit=q.unit, hint=q.hint, seal=_pack({"salt": salt, "ranges": ranges}))


def _seal_choice(q: Choice, salt: str) -> SealedChoice:
    correct = sorted(q.correct)
    data = {
        "salt": salt,
        "correct": _tag(salt, "correct", *correct),
        "feedback": {k: _encrypt(_key(salt, "option", k), v) for k, v in q.options.items()},
    }
    if q.explanation:
        data["explanation"] = _encrypt(_key(salt, "explanation", *correct), q.explanation)
    return SealedChoice(q.prompt, list(q.options), multiple=q.multiple, seal=_pack(data))


def seal(question: Numeric | Choice, salt: str | None = None) -> SealedNumeric | SealedChoice:
    """The sealed twin of ``question`` (same ``check`` verdicts, no answer in it).

    ``salt`` defaults to a hash of the prompt, so sealing is reproducible (a rebuilt student notebook
    does not change when the question did not).
    """
    if isinstance(question, Numeric):
        return _seal_numeric(question, _salt_for(question, salt))
    if isinstance(question, Choice):
        return _seal_choice(question, _salt_for(question, salt))
    raise ValueError(f"question must be a Numeric or Choice, got {type(question).__name__}")


def _source_of(sealed: SealedNumeric | SealedChoice) -> str:
    """Python source that rebuilds ``sealed`` (what a student notebook holds)."""
    if isinstance(sealed, SealedNumeric):
        data = {"salt": sealed._salt, "ranges": sealed._ranges}
        return (
            f"SealedNumeric({sealed.prompt!r}, unit={sealed.unit!r}, hint={sealed.hint!r},\n"
            f"              seal={_pack(data)!r})"
        )
    data = {"salt": sealed._salt, "correct": sealed._correct, "feedback": sealed._feedback}
    if sealed._explanation:
        data["explanation"] = sealed._explanation
    return (
        f"SealedChoice({sealed.prompt!r}, {sealed.options!r}, multiple={sealed.multiple!r},\n"
        f"             seal={_pack(data)!r})"
    )


def question_calls(source: str) -> list[ast.Call]:
    """The outermost ``Numeric(...)``/``Choice(...)`` calls in ``source`` (empty if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    calls: list[ast.Call] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _QUESTION_CLASSES:
            calls.append(node)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return calls


def _evaluate(node: ast.expr, constants: dict[str, Any]) -> Any:
    """``node``'s value from constants, theory's formulas and a few builtins; LookupError if it needs more."""
    try:
        return eval(
            compile(ast.Expression(node), "<question>", "eval"),
            {"__builtins__": {}, **_SAFE_NAMES, **constants, **_QUESTION_CLASSES},
        )
    except (NameError, TypeError, AttributeError, KeyError, IndexError, ZeroDivisionError, SyntaxError) as exc:
        raise LookupError(str(exc)) from exc


def _constant_question(call: ast.Call, constants: dict[str, Any]) -> Numeric | Choice | None:
    """The question ``call`` builds if it needs nothing from the run, else None."""
    try:
        return _evaluate(call, constants)
    except LookupError:
        return None


def notebook_constants(sources: Iterable[str]) -> dict[str, Any]:
    """Top-level ``NAME = <constant expression>`` assignments of the cells, in order (e.g. ``RATE = 40``)."""
    constants: dict[str, Any] = {}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            pairs = [(target, value)]
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
                pairs = list(zip(target.elts, value.elts))  # P, HICCUP = 0.02, 0.5
            for name, expr in pairs:
                if isinstance(name, ast.Name):
                    try:
                        constants[name.id] = _evaluate(expr, constants)
                    except LookupError:
                        constants.pop(name.id, None)
    return constants


def _code_cells_with_constants(nb: Any) -> Iterable[tuple[Any, dict[str, Any]]]:
    """Each code cell of ``nb`` with the constants it and its earlier cells define."""
    sources: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            sources.append(cell.source)
            yield cell, notebook_constants(sources)


def seal_notebook(nb: Any) -> Any:
    """Seal the constant questions of every code cell of ``nb`` (in place; returns ``nb``)."""
    for cell, constants in list(_code_cells_with_constants(nb)):
        cell.source = seal_source(cell.source, constants)
    return nb


def notebook_question_secrets(nb: Any) -> list[str]:
    """:func:`question_secrets` of every code cell of ``nb``."""
    return [s for cell, constants in _code_cells_with_constants(nb) for s in question_secrets(cell.source, constants)]


def seal_source(source: str, constants: dict[str, Any] | None = None) -> str:
    """``source`` with every constant ``Numeric``/``Choice`` replaced by its sealed form (see the module doc).

    ``constants``: names the questions may use (from :func:`notebook_constants` of the cells before).
    """
    if not isinstance(source, str):
        raise ValueError(f"source must be a str, got {type(source).__name__}")
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    replacements = []
    for call in question_calls(source):
        question = _constant_question(call, constants or {})
        if question is not None:
            last = call.end_lineno or call.lineno  # ast.parse sets end positions; the type leaves them optional
            start = offsets[call.lineno - 1] + len(lines[call.lineno - 1].encode()[: call.col_offset].decode())
            end = offsets[last - 1] + len(lines[last - 1].encode()[: call.end_col_offset].decode())
            replacements.append((start, end, _source_of(seal(question))))
    if not replacements:
        return source
    for start, end, text in sorted(replacements, reverse=True):
        source = source[:start] + text + source[end:]
    return "from labkit.sealed import SealedChoice, SealedNumeric\n" + source


def question_secrets(source: str, constants: dict[str, Any] | None = None) -> list[str]:
    """Texts of ``source``'s constant questions that a student copy must not contain.

    The ``answer=``/``correct=`` arguments as written, every mistake hint, option feedback and explanation.
    """
    secrets = []
    for call in question_calls(source):
        question = _constant_question(call, constants or {})
        if question is None:
            continue
        secrets += [ast.get_source_segment(source, k) for k in call.keywords if k.arg in ("answer", "correct")]
        if isinstance(question, Numeric):
            secrets += [why for _, why in question.mistakes]
        else:
            secrets += list(question.options.values())
        if question.explanation:
            secrets.append(question.explanation)
    return [s for s in secrets if s]
