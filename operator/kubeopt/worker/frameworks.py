"""Lazy imports of ML frameworks: a missing one becomes BackendUnavailable, not an ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from kubeopt.worker.errors import BackendUnavailable

IMAGES = {
    "torch": "the torch-compile worker image (kubeopt-worker-torch)",
    "onnxruntime": "the onnxruntime worker image (kubeopt-worker-onnxruntime)",
    "onnx": "a worker image with the onnx package (any kubeopt worker image)",
    "tensorrt": "the TensorRT worker image (kubeopt-worker-tensorrt, NVIDIA TensorRT 10+)",
    "tensorflow": "the TF-TRT worker image (kubeopt-worker-tftrt, TensorFlow <= 2.17 built with TensorRT)",
    "tf2onnx": "a worker image with tensorflow and tf2onnx (kubeopt-worker-tftrt)",
    "torchao": "the torch-compile worker image (kubeopt-worker-torch, with torchao)",
}


def require(module: str, backend: str) -> ModuleType:
    """Import ``module`` or raise BackendUnavailable naming the image that has it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        raise BackendUnavailable(backend, top, IMAGES.get(top, "a worker image that has it")) from error
