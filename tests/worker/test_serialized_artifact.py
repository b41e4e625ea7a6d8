"""Validation and the benchmark run the artifact written to disk, read back as a server reads it.

Each backend here builds as the real one does, then alters the file it wrote (as a faulty
serializer, a save that drops a setting, or anything else between the object in memory and
the bytes published would). A pipeline that validated the object in memory would publish the
altered file as good; one that validates what it publishes refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kubeopt.api.load import parse_resource
from kubeopt.api.reasons import Reason
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.onnxruntime.backend import OnnxRuntimeBackend
from kubeopt.worker.backends.registry import BackendRegistry
from kubeopt.worker.backends.torch_compile.backend import TorchCompileBackend
from kubeopt.worker.pipeline import RunSettings, run_optimization
from kubeopt.worker.runners import Feeds, Runner, WorkPlace
from tests.conftest import current_run, digits_resource

pytestmark = pytest.mark.slow
SCALE = 3.0  # every weight tripled: the logits change by far more than any budget allows


def scale_onnx_weights(path: Path) -> None:
    model = onnx.load(str(path))
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        if array.dtype.kind == "f":
            initializer.CopyFrom(numpy_helper.from_array(array * SCALE, initializer.name))
    onnx.save(model, str(path))


class OrtThatAltersItsFile(OnnxRuntimeBackend):
    def build(self, context: BuildContext) -> Built:
        built = super().build(context)
        scale_onnx_weights(context.artifact_dir / "model.onnx")
        return built


class AltersTheFileWhenTimed:
    """A real session's runner; the benchmark's first prepare rewrites the file it was loaded from."""

    def __init__(self, runner: Runner, path: Path) -> None:
        self.runner, self.path, self.altered = runner, path, False

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return self.runner.run(feeds)

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        if not self.altered:
            scale_onnx_weights(self.path)
            self.altered = True
        return self.runner.prepare(feeds)

    def synchronize(self) -> None:
        self.runner.synchronize()

    def work_runs_on(self) -> WorkPlace:
        return self.runner.work_runs_on()


class OrtWhoseFileChangesAfterValidation(OnnxRuntimeBackend):
    def load(self, context: BuildContext, built: Built) -> Built:
        loaded = super().load(context, built)
        assert loaded.runner is not None
        return replace(loaded, runner=AltersTheFileWhenTimed(loaded.runner, context.artifact_dir / "model.onnx"))


class TorchCompileThatAltersItsFile(TorchCompileBackend):
    def build(self, context: BuildContext) -> Built:
        import torch

        built = super().build(context)
        path = context.artifact_dir / "model.pt2"
        program = torch.export.load(str(path))
        with torch.no_grad():
            for tensor in program.state_dict.values():
                if tensor.is_floating_point():
                    tensor.mul_(SCALE)
        torch.export.save(program, str(path))
        return built


def run_with(backend: Any, digits: dict[str, Path], tmp_path: Path, model: str, fmt: str,
             target: dict[str, str]) -> Any:
    registry = BackendRegistry()
    registry.register(backend)
    resource = parse_resource(digits_resource(
        digits[model], fmt, tmp_path / "out", [target], validation={"uri": str(digits["validation"])},
        benchmark={"batchSizes": [1, 8], "warmup": 1, "iterations": 2}))
    return run_optimization(resource, RunSettings(device="cpu", workspace=tmp_path / "work"), registry)


def test_an_onnx_model_altered_on_disk_after_its_build_fails_validation_and_is_not_current(
        digits: dict[str, Path], tmp_path: Path) -> None:
    outcome = run_with(OrtThatAltersItsFile(), digits, tmp_path, "onnx", "onnx",
                       {"name": "ort", "backend": "onnxruntime"})

    result = outcome.results[0]
    assert result.reason is Reason.ACCURACY_BUDGET_EXCEEDED, result.message
    assert "relative error" in result.message
    assert not (tmp_path / "out" / "ort" / "current.json").exists()


def test_a_pt2_altered_on_disk_after_its_build_fails_validation_and_is_not_current(
        digits: dict[str, Path], tmp_path: Path) -> None:
    outcome = run_with(TorchCompileThatAltersItsFile(), digits, tmp_path, "pt2", "torch-export",
                       {"name": "compiled", "backend": "torch-compile"})

    result = outcome.results[0]
    assert result.reason is Reason.ACCURACY_BUDGET_EXCEEDED, result.message
    assert "relative error" in result.message
    assert not (tmp_path / "out" / "compiled" / "current.json").exists()


def test_a_model_file_that_changes_after_validation_is_not_published_as_current(
        digits: dict[str, Path], tmp_path: Path) -> None:
    outcome = run_with(OrtWhoseFileChangesAfterValidation(), digits, tmp_path, "onnx", "onnx",
                       {"name": "ort", "backend": "onnxruntime"})

    result = outcome.results[0]
    assert result.reason is Reason.BUILD_FAILED, result.message
    assert "model.onnx changed on disk after validation" in result.message
    assert not (tmp_path / "out" / "ort" / "current.json").exists()


def test_the_unaltered_builds_pass_so_the_failures_above_are_the_files(digits: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    ort = run_with(OnnxRuntimeBackend(), digits, tmp_path / "ort", "onnx", "onnx",
                   {"name": "ort", "backend": "onnxruntime"})
    compiled = run_with(TorchCompileBackend(), digits, tmp_path / "pt2", "pt2", "torch-export",
                        {"name": "compiled", "backend": "torch-compile"})

    assert ort.results[0].succeeded, ort.results[0].message
    assert compiled.results[0].succeeded, compiled.results[0].message
    assert compiled.results[0].details["modelFiles"] == ["compile-cache.bin", "compile.json", "load.py",
                                                         "model.pt2", "serve.json"]
    published = json.loads((current_run(tmp_path / "ort" / "out", "ort") / "manifest.json").read_text())
    digests = {entry["path"]: entry["sha256"] for entry in published["files"]}
    assert ort.results[0].details["validatedSha256"]["model.onnx"] == digests["model.onnx"]
