"""The README's architecture picture and prerequisites agree with the code they describe.

The picture names modules and files; the prerequisites name each image's base and the Kubernetes
version the chart declares. A rename, a new worker image or a new ``kubeVersion`` fails here,
naming what the README still says.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def mermaid_block() -> str:
    match = re.search(r"## Architecture\n\n```mermaid\n(.*?)```", README, re.S)
    assert match, "README.md: no ```mermaid block under ## Architecture"
    return match.group(1)


def module_exists(dotted: str) -> bool:
    path = ROOT / "operator" / Path(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_module_the_architecture_picture_names_exists() -> None:
    named = r"(?<![\w./])kubeopt\.(?:api|controller|worker|storage|cli)(?:\.[a-z_]+)*"
    modules = set(re.findall(named, mermaid_block()))

    missing = sorted(m for m in modules if not module_exists(m))

    assert len(modules) >= 15
    assert missing == []


def test_every_file_the_architecture_picture_names_exists() -> None:
    paths = set(re.findall(r"\b(?:charts|crds|operator)/[\w./-]+", mermaid_block()))

    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


def test_the_picture_shows_each_backend_package_of_the_worker() -> None:
    packages = sorted(p.stem for p in (ROOT / "operator/kubeopt/worker/backends").glob("*.py")
                      if p.stem not in ("__init__", "base", "registry"))

    assert all(name in mermaid_block() for name in packages), packages


def test_the_prerequisites_name_each_images_base() -> None:
    bases = {path.parent.name: re.search(r"^ARG BASE=(\S+)", path.read_text(), re.M)
             for path in (ROOT / "images").glob("*/Containerfile")}

    stale = sorted(f"{name}: {found.group(1)}" for name, found in bases.items()
                   if found and f"`{found.group(1)}`" not in README)

    assert len(bases) >= 5
    assert stale == []


def test_the_prerequisites_state_the_kubernetes_version_the_chart_requires() -> None:
    kube_version = yaml.safe_load((ROOT / "charts/kubeopt/Chart.yaml").read_text())["kubeVersion"]
    minimum = re.fullmatch(r">=(\d+\.\d+)\.0-0", kube_version)

    assert minimum, kube_version
    assert f"| Kubernetes | {minimum.group(1)} or later (the chart's `kubeVersion: \"{kube_version}\"`)" in README
