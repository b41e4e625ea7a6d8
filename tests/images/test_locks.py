"""The lock files (requirements/*.txt, written by `make lock`) against pyproject.toml.

Every install of kubeopt goes through them as pip constraints, so a dependency added to
pyproject.toml without `make lock` would install unpinned; two files pinning one package
differently would make an image differ from the venv the tests ran in.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = sorted(PROJECT["optional-dependencies"])
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)(?:\s*;\s*(?P<marker>.+))?$")
#: Linux x86_64 with CPython 3.11: what the images and CI run.
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
         "python_version": "3.11", "python_full_version": "3.11.2", "implementation_name": "cpython",
         "platform_python_implementation": "CPython"}


def pins(lock: Path) -> dict[str, tuple[Version, str | None]]:
    """Package (canonical name) -> (pinned version, marker) of a lock file; anything else but comments fails."""
    found: dict[str, tuple[Version, str | None]] = {}
    for line in lock.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"{lock.name}: {line!r} is not NAME==VERSION[; marker] (pip refuses other constraints)"
        found[canonicalize_name(match["name"])] = (Version(match["version"]), match["marker"])
    return found


def requirements_of(extra: str) -> list[Requirement]:
    return [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra]]


def test_there_is_a_lock_file_for_every_extra_and_no_other() -> None:
    assert sorted(p.stem for p in LOCKS.glob("*.txt") if p.stem != "venv") == EXTRAS


@pytest.mark.parametrize("extra", EXTRAS)
def test_every_requirement_of_an_extra_is_pinned_within_its_specifier(extra: str) -> None:
    locked = pins(LOCKS / f"{extra}.txt")
    for requirement in requirements_of(extra):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"requirements/{extra}.txt lacks {requirement}: run `make lock`"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"requirements/{extra}.txt pins {name}=={version}, outside {requirement}: run `make lock`"


def test_the_venv_lock_pins_every_extra_the_venv_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"-c requirements/venv\.txt -e '\.\[([a-z,]+)\]'", makefile)
    assert match, "the Makefile's venv target no longer installs through requirements/venv.txt"
    locked = pins(LOCKS / "venv.txt")
    for extra in match[1].split(","):
        for requirement in requirements_of(extra):
            assert canonicalize_name(requirement.name) in locked, f"venv.txt lacks {requirement}: run `make lock`"


@pytest.mark.parametrize("extra", EXTRAS)
def test_no_lock_file_pins_a_package_differently_from_the_venv_lock(extra: str) -> None:
    venv = pins(LOCKS / "venv.txt")
    for name, (version, marker) in pins(LOCKS / f"{extra}.txt").items():
        if name in venv:
            assert venv[name][0] == version, f"{extra}.txt pins {name}=={version}, venv.txt {venv[name][0]}"
        else:  # only what the venv does not install (the tensorrt extra's own); still on Linux
            assert marker is None or Marker(marker).evaluate(LINUX), f"{extra}.txt: {name} unexplained"


def test_the_operator_lock_holds_no_ml_framework() -> None:
    frameworks = {"torch", "onnx", "onnxruntime", "tensorflow", "tensorflow-cpu", "tensorrt", "scikit-learn"}
    assert frameworks.isdisjoint(pins(LOCKS / "operator.txt"))
