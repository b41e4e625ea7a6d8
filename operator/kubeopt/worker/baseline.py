"""The framework baseline: the source model run eagerly in FP32 by its own framework.

torch formats run in torch eager; ONNX runs in ONNX Runtime with basic graph optimizations;
TensorFlow runs its SavedModel signature. It is measured in the same process and on the same
device as the target, so every speedup is a ratio measured side by side.

On a GPU the baseline runs on the GPU or not at all (``choose_baseline``): an ONNX model gets
ONNX Runtime's CUDA execution provider, never its CPU one, which would set a TensorRT engine
on the GPU against a CPU and report a speedup of the device, not of the optimization. An
image without a GPU ONNX Runtime (the TensorRT image has a CPU one) refuses with
BackendUnavailable, naming the way out: give the model in its torch format, whose baseline is
torch eager on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeopt.api.spec import ModelFormat, OnnxRuntimeOptions
from kubeopt.worker.backends.onnxruntime.backend import make_session
from kubeopt.worker.backends.onnxruntime.runner import OrtRunner
from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.errors import BackendUnavailable, ModelCorrupt, first_line
from kubeopt.worker.frameworks import require
from kubeopt.worker.runners import Runner
from kubeopt.worker.source import Representation, SourceModel

DESCRIPTIONS = {
    Representation.TORCH: "torch eager fp32",
    Representation.ONNX: "onnxruntime fp32 (basic graph optimizations; CUDA provider on a GPU)",
    Representation.TENSORFLOW: "tensorflow eager fp32",
}


def strict_fp32() -> None:
    """FP32 means FP32: cuDNN convolutions default to TF32 on Ampere and later, which would
    make the baseline (and fp32 targets) a TF32 measurement."""
    torch = require("torch", "torch-compile")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


ORT_GPU_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class BaselineChoice:
    """Which framework runs the baseline, and (for ONNX Runtime) which execution provider."""

    framework: Representation
    execution_provider: str = "auto"


def choose_baseline(family: Representation, device: str, ort_providers: list[str]) -> BaselineChoice:
    """The baseline for a source family on a device: its own framework, on that device.

    Raises BackendUnavailable for an ONNX model on a GPU when ONNX Runtime has no CUDA
    provider here: a CPU baseline beside GPU targets would measure the device, not the target.
    """
    if family is not Representation.ONNX:
        return BaselineChoice(family)
    if not device.startswith("cuda"):
        return BaselineChoice(family, "CPUExecutionProvider")
    if ORT_GPU_PROVIDER not in ort_providers:
        raise BackendUnavailable(
            "baseline", f"onnxruntime-gpu (the fp32 GPU baseline of an ONNX model needs {ORT_GPU_PROVIDER}; "
            f"installed: {', '.join(ort_providers) or 'none'})",
            "an image with onnxruntime-gpu, or give model.format torch-export or torchscript so the baseline "
            "runs in torch on the GPU")
    return BaselineChoice(family, ORT_GPU_PROVIDER)


def _ort_providers() -> list[str]:
    ort = require("onnxruntime", "onnxruntime")
    return list(ort.get_available_providers())


def baseline_runner(source: SourceModel) -> Runner:
    """Return a runner for the source model as its framework runs it, in fp32, on its device."""
    names = [spec.name for spec in source.spec.inputs]
    if source.family is Representation.TORCH:
        if source.device.startswith("cuda"):
            strict_fp32()
        return TorchRunner(source.torch_module(), names, source.device)
    if source.family is Representation.ONNX:
        choice = choose_baseline(source.family, source.device, _ort_providers())
        options = OnnxRuntimeOptions(graph_optimization_level="basic", execution_provider=choice.execution_provider)
        return OrtRunner(make_session(source.onnx_path(), options, source.device))
    from kubeopt.worker.backends.tf_trt.runner import TfRunner

    tf = require("tensorflow", "tf-trt")
    if source.spec.format is ModelFormat.KERAS:
        return TfRunner(tf, load_keras(tf, source), keras_inputs=names)
    return TfRunner(tf, load_saved_model(tf, source).signatures["serving_default"])


def load_keras(tf: Any, source: SourceModel) -> Any:
    try:
        return tf.keras.models.load_model(str(source.path))
    except Exception as error:
        raise ModelCorrupt(f"model.uri: {source.path.name} is not a readable Keras model: "
                           f"{first_line(error)}") from error


def load_saved_model(tf: Any, source: SourceModel) -> Any:
    try:
        loaded = tf.saved_model.load(str(source.path))
    except Exception as error:
        raise ModelCorrupt(f"model.uri: {source.path.name} is not a readable SavedModel: "
                           f"{first_line(error)}") from error
    if "serving_default" not in loaded.signatures:
        raise ModelCorrupt("model.uri: the SavedModel has no serving_default signature")
    return loaded
