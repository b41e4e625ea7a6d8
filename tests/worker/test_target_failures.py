"""How the pipeline treats a backend that fails: one target's failure never stops the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from kubeopt.api.load import parse_resource
from kubeopt.api.reasons import Reason
from kubeopt.api.spec import BackendName, Precision
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.onnxruntime.backend import OnnxRuntimeBackend
from kubeopt.worker.backends.registry import BackendRegistry
from kubeopt.worker.pipeline import RunSettings, run_optimization
from kubeopt.worker.source import Representation
from tests.conftest import digits_resource


class ExhaustedBackend:
    """A torch-compile stand-in whose build runs out of GPU memory."""

    name: ClassVar[BackendName] = BackendName.TORCH_COMPILE
    consumes: ClassVar[Representation] = Representation.TORCH
    precisions: ClassVar[frozenset[Precision]] = frozenset(Precision)

    def check_available(self, device: str) -> None:
        return None

    def build(self, context: BuildContext) -> Built:
        import torch  # torch's own class: the pipeline recognises it with isinstance

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


class BrokenBackend(ExhaustedBackend):
    def build(self, context: BuildContext) -> Built:
        raise KeyError("a bug")


def registry_with(backend: Any) -> BackendRegistry:
    registry = BackendRegistry()
    registry.register(OnnxRuntimeBackend())
    registry.register(backend)
    return registry


def resource(digits: dict[str, Path], tmp_path: Path) -> Any:
    return parse_resource(digits_resource(
        digits["pt2"], "torch-export", tmp_path / "out",
        [{"name": "ort", "backend": "onnxruntime"}, {"name": "big", "backend": "torch-compile", "precision": "fp16"}],
        validation={"uri": str(digits["validation"])}))


def test_out_of_gpu_memory_fails_only_that_target_with_a_hint(digits: dict[str, Path], tmp_path: Path) -> None:
    outcome = run_optimization(resource(digits, tmp_path), RunSettings(device="cpu"), registry_with(ExhaustedBackend()))

    results = {r.target.name: r for r in outcome.results}
    assert results["ort"].succeeded and results["ort"].published is not None
    assert results["big"].reason is Reason.BUILD_FAILED
    assert "lower benchmark.batchSizes" in results["big"].message
    assert outcome.best is not None and outcome.best.target.name == "ort"


def test_a_programming_error_in_a_backend_propagates(digits: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="a bug"):
        run_optimization(resource(digits, tmp_path), RunSettings(device="cpu"), registry_with(BrokenBackend()))
