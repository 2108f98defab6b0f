"""environment.yml (conda, Binder) and pyproject.toml (pip, make) declare the same dependencies.

Why: the two files are edited by hand in different pull requests. When they drift, Binder readers get a
different plotly or aiormq than CI tested, and the failure shows up as a broken notebook weeks later.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def requirements(lines) -> dict[str, Requirement]:
    """Map canonical package name -> Requirement; a name listed twice is an error in either file."""
    found: dict[str, Requirement] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in found, f"{req.name} is listed twice"
        found[name] = req
    return found


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return requirements(lines)


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


@pytest.fixture(scope="module")
def env_pip(environment) -> dict[str, Requirement]:
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return requirements(sections[0])


def test_every_pyproject_dependency_is_in_environment_yml_with_the_same_range(pyproject, env_pip):
    missing = sorted(set(pyproject) - set(env_pip))
    assert not missing, f"in pyproject.toml but not in environment.yml's pip section: {missing}"
    differ = {
        name: (str(req.specifier), str(env_pip[name].specifier))
        for name, req in pyproject.items()
        if req.specifier != env_pip[name].specifier or req.marker != env_pip[name].marker
    }
    assert not differ, f"version ranges differ (pyproject, environment.yml): {differ}"


def test_environment_yml_adds_nothing_pyproject_does_not_declare(pyproject, env_pip):
    extra = sorted(set(env_pip) - set(pyproject))
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"


def test_environment_yml_pins_python_within_requires_python(environment):
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    pythons = [d for d in environment["dependencies"] if isinstance(d, str) and d.split("=")[0] == "python"]
    assert len(pythons) == 1, f"environment.yml must pin python once, found {pythons}"
    version = pythons[0].split("=")[-1]
    assert Requirement(f"python{requires}").specifier.contains(version), (
        f"environment.yml's {pythons[0]} is outside requires-python {requires}"
    )
    assert environment["channels"] == ["conda-forge"], "Binder builds from conda-forge only"
