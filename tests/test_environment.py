"""The conda environment.yml and the pip requirements in pyproject.toml list the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """Package name of a requirement line, without version, extras or markers."""
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def _environment_pip_requirements() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    items = []
    for line in lines[start + 1:]:
        match = re.match(r"^\s{4,}- (.+)$", line)
        if not match:
            break
        items.append(match.group(1).strip())
    return items


def test_environment_yml_lists_the_pyproject_packages():
    assert sorted(map(_name, _environment_pip_requirements())) == sorted(map(_name, _pyproject_requirements()))


def test_environment_yml_keeps_the_same_requirement_strings():
    # Markers matter (xgboost-cpu on Linux x86_64): compare whole strings, spaces ignored.
    norm = lambda reqs: sorted(r.replace(" ", "") for r in reqs)  # noqa: E731
    assert norm(_environment_pip_requirements()) == norm(_pyproject_requirements())


def test_environment_yml_pins_python_311():
    assert re.search(r"^\s*- python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)
