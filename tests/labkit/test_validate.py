"""The shared argument checks: accepted values pass through, rejected ones name the argument and range."""

import math

import pytest

from labkit._validate import between, integer, non_negative, one_of, port, positive, probability


@pytest.mark.parametrize("v", [1, 0.001, 10**9, 2.5])
def test_positive_returns_value(v):
    assert positive("rate", v) is v


@pytest.mark.parametrize("v", [0, -1, -0.5, math.nan, math.inf, True, "3", None])
def test_positive_rejects(v):
    with pytest.raises(ValueError, match=r"^rate must be .*> 0, got "):
        positive("rate", v)


def test_positive_message_is_exact():
    with pytest.raises(ValueError) as e:
        positive("rate", -1)
    assert str(e.value) == "rate must be > 0, got -1"


def test_positive_allow_inf():
    assert positive("duration", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match="duration"):
        positive("duration", -math.inf, allow_inf=True)


@pytest.mark.parametrize("v", [0, 0.0, 3])
def test_non_negative_accepts(v):
    assert non_negative("jitter_ms", v) == v


@pytest.mark.parametrize("v", [-1e-9, -3, math.nan, False])
def test_non_negative_rejects(v):
    with pytest.raises(ValueError, match=r"^jitter_ms must be .*>= 0, got "):
        non_negative("jitter_ms", v)


@pytest.mark.parametrize("v", [0, 1, 0.5, 0.0, 1.0])
def test_probability_accepts(v):
    assert probability("p", v) == v


@pytest.mark.parametrize("v", [-0.01, 1.01, 2, math.nan, "0.5"])
def test_probability_rejects(v):
    with pytest.raises(ValueError, match=r"^p must be .*in \[0, 1\], got "):
        probability("p", v)


@pytest.mark.parametrize("v", [1, 80, 65535])
def test_port_accepts(v):
    assert port("port", v) == v


@pytest.mark.parametrize("v", [0, -1, 65536, 80.0, "80", True])
def test_port_rejects(v):
    with pytest.raises(ValueError, match=r"^port must be an integer in \[1, 65535\], got "):
        port("port", v)


def test_port_allow_zero_means_ephemeral():
    assert port("port", 0, allow_zero=True) == 0
    with pytest.raises(ValueError, match=r"\[0, 65535\]"):
        port("port", 70000, allow_zero=True)


def test_integer_bounds():
    assert integer("n", 5, 1, 10) == 5
    assert integer("n", 5) == 5
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        integer("n", 0, lo=1)
    with pytest.raises(ValueError, match=r"^n must be an integer <= 3, got 4$"):
        integer("n", 4, hi=3)
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, 10\], got 2.5$"):
        integer("n", 2.5, 1, 10)


def test_one_of():
    assert one_of("arrivals", "poisson", ("poisson", "constant")) == "poisson"
    with pytest.raises(ValueError) as e:
        one_of("arrivals", "gamma", ("poisson", "constant"))
    assert str(e.value) == "arrivals must be one of 'poisson', 'constant', got 'gamma'"


def test_one_of_accepts_generator():
    assert one_of("d", "up", (x for x in ["up", "down"])) == "up"


def test_between():
    assert between("q", 99.9, 0, 100) == 99.9
    with pytest.raises(ValueError) as e:
        between("q", 101, 0, 100)
    assert str(e.value) == "q must be in [0, 100], got 101"
    with pytest.raises(ValueError, match=r"^q must be a number in \[0, 100\], got None$"):
        between("q", None, 0, 100)
