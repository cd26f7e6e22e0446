"""``.ci/lowest.txt`` pins every dependency at the lower bound pyproject.toml declares, so the lowest-versions
run in ``.ci/run`` tests the range users are promised (and a bound raised in one place is raised in both)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
TESTED_ELSEWHERE = {"torch": ("2.11", "2.13.0")}
"""Declared floor, version CI runs instead: the CI machines carry one CPU wheel of torch (2.13.0); 2.11 is the
GPU machine's torch, where ``benchmarks/device_check.sh`` runs."""
TOOL_EXTRAS = {"test", "dev"}
"""Extras of test and lint tools: not what a user installs, not pinned."""


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in TOOL_EXTRAS:
            lines += requirements
    return [Requirement(line) for line in lines]


def lowest_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{line}: pins are exact"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"{requirement}: every dependency declares one lower bound (>=)"
    return bounds[0]


def test_every_dependency_is_pinned_at_its_declared_floor() -> None:
    pins = lowest_pins()
    declared = {canonicalize_name(requirement.name): requirement for requirement in declared_requirements()}
    assert set(pins) == set(declared), "lowest.txt and pyproject.toml name the same packages"
    for name, requirement in declared.items():
        floor = lower_bound(requirement)
        if name in TESTED_ELSEWHERE:
            declared_floor, ci_version = TESTED_ELSEWHERE[name]
            assert (floor, pins[name]) == (Version(declared_floor), Version(ci_version)), name
        else:
            assert pins[name] == floor, f"{name}: lowest.txt pins {pins[name]}, pyproject's floor is {floor}"
        assert pins[name] in requirement.specifier, f"{name}: the pin is inside the declared range"


def test_readme_runs_the_lowest_versions_with_this_file() -> None:
    readme = (ROOT / "README.md").read_text()
    heading = "### Supported versions, and where each was run"
    block = readme.split(heading, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "-c .ci/lowest.txt" in block.splitlines()[0]
    assert f'run_block "{heading}"' in (ROOT / ".ci" / "run").read_text()
