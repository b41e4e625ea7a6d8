from __future__ import annotations

import pytest

from kubeopt.worker.backends.onnxruntime.runner import choose_providers


def test_auto_provider_on_cpu_is_cpu_and_on_gpu_prefers_tensorrt_then_cuda() -> None:
    installed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    assert choose_providers("auto", installed, "cpu") == ["CPUExecutionProvider"]
    assert choose_providers("auto", installed, "cuda") == installed
    assert choose_providers("auto", ["CPUExecutionProvider"], "cuda") == ["CPUExecutionProvider"]


def test_requested_provider_that_is_not_installed_names_the_installed_ones() -> None:
    with pytest.raises(ValueError, match="CUDAExecutionProvider is not installed; installed: CPUExecutionProvider"):
        choose_providers("CUDAExecutionProvider", ["CPUExecutionProvider"], "cuda")
