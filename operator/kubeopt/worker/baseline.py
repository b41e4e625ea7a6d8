"""The framework baseline: the source model run eagerly in FP32 by its own framework.

torch formats run in torch eager; ONNX runs in ONNX Runtime with basic graph optimizations;
TensorFlow runs its SavedModel signature. It is measured in the same process and on the same
device as the target, so every speedup is a ratio measured side by side.
"""

from __future__ import annotations

from typing import Any

from kubeopt.api.spec import ModelFormat, OnnxRuntimeOptions
from kubeopt.worker.backends.onnxruntime import make_session
from kubeopt.worker.errors import ModelCorrupt, first_line
from kubeopt.worker.frameworks import require
from kubeopt.worker.runners import OrtRunner, Runner, TorchRunner
from kubeopt.worker.source import Representation, SourceModel

DESCRIPTIONS = {
    Representation.TORCH: "torch eager fp32",
    Representation.ONNX: "onnxruntime fp32 (basic graph optimizations)",
    Representation.TENSORFLOW: "tensorflow eager fp32",
}


def strict_fp32() -> None:
    """FP32 means FP32: cuDNN convolutions default to TF32 on Ampere and later, which would
    make the baseline (and fp32 targets) a TF32 measurement."""
    torch = require("torch", "torch-compile")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def baseline_runner(source: SourceModel) -> Runner:
    """Return a runner for the source model as its framework runs it, in fp32."""
    names = [spec.name for spec in source.spec.inputs]
    if source.family is Representation.TORCH:
        if source.device.startswith("cuda"):
            strict_fp32()
        return TorchRunner(source.torch_module(), names, source.device)
    if source.family is Representation.ONNX:
        options = OnnxRuntimeOptions(graph_optimization_level="basic")
        return OrtRunner(make_session(source.onnx_path(), options, source.device))
    from kubeopt.worker.backends.tf_trt import TfRunner

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
