"""The baseline runs in the source's own framework on the target's device, never ORT on a CPU
beside GPU targets."""

from __future__ import annotations

import pytest

from kubeopt.api.reasons import Reason
from kubeopt.worker.baseline import BaselineChoice, choose_baseline
from kubeopt.worker.errors import BackendUnavailable
from kubeopt.worker.source import Representation

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("family", [Representation.TORCH, Representation.TENSORFLOW])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_and_tensorflow_models_are_their_own_baseline_on_any_device(family: Representation,
                                                                           device: str) -> None:
    assert choose_baseline(family, device, CPU_ONLY) == BaselineChoice(family)


def test_an_onnx_model_on_a_cpu_is_timed_by_onnx_runtime_on_the_cpu() -> None:
    assert choose_baseline(Representation.ONNX, "cpu", WITH_CUDA).execution_provider == "CPUExecutionProvider"


def test_an_onnx_model_on_a_gpu_is_timed_by_onnx_runtime_on_the_gpu() -> None:
    assert choose_baseline(Representation.ONNX, "cuda:0", WITH_CUDA).execution_provider == "CUDAExecutionProvider"


def test_an_onnx_model_on_a_gpu_without_a_gpu_onnx_runtime_is_refused_not_timed_on_the_cpu() -> None:
    with pytest.raises(BackendUnavailable, match=r"CUDAExecutionProvider.*installed: CPUExecutionProvider") as caught:
        choose_baseline(Representation.ONNX, "cuda", CPU_ONLY)

    assert caught.value.reason is Reason.BACKEND_UNAVAILABLE
    assert "torch-export" in caught.value.message
