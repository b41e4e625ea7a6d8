"""Shared fixtures: the digits CNN, trained once per session (seconds), and spec helpers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBEOPT = [sys.executable, "-m", "kubeopt.cli"]


def _load_make_digits() -> Any:
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "examples" / "digits" / "make_digits.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits CNN as .pt2, .onnx and TorchScript, with calibration and labelled validation data."""
    return dict(_load_make_digits().build(tmp_path_factory.mktemp("digits"), epochs=8))


def digits_resource(model: Path, fmt: str, output: Path, targets: list[dict[str, Any]],
                    **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": str(model), "format": fmt, "task": "classification",
                  "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
        "targets": targets,
        "benchmark": {"batchSizes": [1, 32], "warmup": 2, "iterations": 10},
        "output": {"uri": str(output)},
        "resources": {"gpu": 0},
    }
    body.update(spec)
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "t"},
            "spec": body}


def current_run(output: Path, target: str) -> Path:
    """The folder a reader gets by following ``<output>/<target>/current.json``, verified against its manifest."""
    from kubeopt.storage.runs import current_run as follow
    from kubeopt.storage.store import LocalStore
    from kubeopt.storage.uri import parse_uri

    uri = follow(LocalStore(), parse_uri(str(output / target)))
    assert uri is not None, f"{output / target}: no current run"
    return uri.local_path


def run_kubeopt(tmp_path: Path, resource: dict[str, Any], *extra: str) -> tuple[int, str, dict[str, Any] | None]:
    """Run `kubeopt run` as a user would; return exit code, stderr and the parsed termination message."""
    import json

    spec_file = tmp_path / "optimization.yaml"
    spec_file.write_text(yaml.safe_dump(resource))
    termination = tmp_path / "termination-log"
    process = subprocess.run([*KUBEOPT, "run", str(spec_file), "--termination-log", str(termination),
                              "--device", "cpu", *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    message = json.loads(termination.read_text()) if termination.exists() else None
    return process.returncode, process.stderr + process.stdout, message
