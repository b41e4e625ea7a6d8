"""A target borrows torch's process-wide settings: two targets in either order see the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from kubeopt.api.load import parse_resource
from kubeopt.api.spec import BackendName, Precision
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.registry import BackendRegistry
from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.pipeline import RunSettings, run_optimization
from kubeopt.worker.source import Representation
from kubeopt.worker.torch_state import TorchSettings, borrowed_torch_settings, snapshot
from tests.conftest import digits_resource

torch = pytest.importorskip("torch")


class SettingsSpy:
    """A torch-compile stand-in that changes the settings the real backend changes (and a few
    more a target's options could), and records what it found when its build began."""

    name: ClassVar[BackendName] = BackendName.TORCH_COMPILE
    consumes: ClassVar[Representation] = Representation.TORCH
    precisions: ClassVar[frozenset[Precision]] = frozenset(Precision)

    def __init__(self) -> None:
        self.seen: dict[str, TorchSettings] = {}

    def check_available(self, device: str) -> None:
        """torch is here."""

    def build(self, context: BuildContext) -> Built:
        self.seen[context.target.name] = snapshot(torch)
        if context.target.precision is Precision.INT8:  # what TorchCompileBackend does for int8
            torch._inductor.config.freezing = True
            torch._dynamo.config.recompile_limit = 64
        else:
            torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
            torch.set_float32_matmul_precision("medium")
            torch._inductor.config.max_autotune = True
        names = [spec.name for spec in context.spec.model.inputs]
        return Built(TorchRunner(context.source.torch_module(), names, "cpu"), 0.0)

    def load(self, context: BuildContext, built: Built) -> Built:
        """The spy's runner is its eager module; nothing was written to read back."""
        return built


def run_in_order(digits: dict[str, Path], tmp_path: Path, targets: list[dict[str, Any]]) -> SettingsSpy:
    spy = SettingsSpy()
    registry = BackendRegistry()
    registry.register(spy)
    resource = parse_resource(digits_resource(
        digits["pt2"], "torch-export", tmp_path / "out", targets,
        calibration={"uri": str(digits["calibration"]), "samples": 64, "batchSize": 32},
        benchmark={"batchSizes": [8], "warmup": 1, "iterations": 2}))
    outcome = run_optimization(resource, RunSettings(device="cpu", workspace=tmp_path / "work"), registry)
    assert all(result.succeeded for result in outcome.results), [r.message for r in outcome.results]
    return spy


INT8 = {"name": "compile-int8", "backend": "torch-compile", "precision": "int8"}
FP16 = {"name": "compile-fp16", "backend": "torch-compile", "precision": "fp16"}


def test_two_targets_see_the_same_torch_settings_in_either_order(digits: dict[str, Path], tmp_path: Path) -> None:
    before = snapshot(torch)

    forward = run_in_order(digits, tmp_path / "forward", [INT8, FP16])
    backward = run_in_order(digits, tmp_path / "backward", [FP16, INT8])

    assert forward.seen["compile-int8"] == backward.seen["compile-int8"] == before
    assert forward.seen["compile-fp16"] == backward.seen["compile-fp16"] == before
    assert snapshot(torch) == before


def test_the_real_torch_compile_settings_are_put_back_after_the_block() -> None:
    before = snapshot(torch)

    with borrowed_torch_settings():
        torch.backends.cudnn.benchmark = True
        torch._inductor.config.freezing = True
        torch._dynamo.config.recompile_limit = 99
        torch.backends.cuda.matmul.allow_tf32 = True

    assert snapshot(torch) == before
    assert torch._inductor.config.freezing is before.configs["_inductor.config"]["freezing"]


def test_settings_are_put_back_when_the_target_fails() -> None:
    before = snapshot(torch)

    with pytest.raises(RuntimeError), borrowed_torch_settings():
        torch._inductor.config.freezing = True
        raise RuntimeError("the build failed")

    assert snapshot(torch) == before
