"""labkit.glue writes the output myst-nb's glue roles read, with plain values and clear errors."""

from __future__ import annotations

from ast import literal_eval

import pytest

from labkit.glue import GLUE_PREFIX, glue


@pytest.fixture
def shown(monkeypatch):
    out = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw, metadata: out.append((obj, metadata)))
    return out


def test_values_are_stored_as_myst_nb_reads_them(shown):
    import myst_nb.ext.glue as myst_glue

    assert GLUE_PREFIX == myst_glue.GLUE_PREFIX
    glue(peak=76, share=0.8321, word="hybrid")
    assert [m["scrapbook"] for _, m in shown] == [
        {"name": n, "mime_prefix": GLUE_PREFIX} for n in ("peak", "share", "word")
    ]
    assert [literal_eval(o[GLUE_PREFIX + "text/plain"]) for o, _ in shown] == [76, 0.8321, "hybrid"]


def test_other_number_types_become_plain_numbers(shown):
    """A Fraction or a numpy scalar would not survive literal_eval as itself: stored as float or int."""
    from fractions import Fraction

    glue(x=Fraction(3, 2))
    assert [o[GLUE_PREFIX + "text/plain"] for o, _ in shown] == ["1.5"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "at least one"),
        ({"x": float("nan")}, "x must be a finite number"),
        ({"x": True}, "x must be a number or a string"),
        ({"x": [1]}, "x must be a number or a string"),
    ],
)
def test_bad_values_are_named(kwargs, message, shown):
    with pytest.raises(ValueError, match=message):
        glue(**kwargs)
    assert not shown


def test_bad_names_are_refused(shown):
    with pytest.raises(ValueError, match="identifiers"):
        glue(**{"not a name": 1})
