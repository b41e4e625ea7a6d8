"""Read a source model from local disk, one loader per format, with typed errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeopt.api.spec import ModelFormat, TensorSpec
from kubeopt.worker.errors import InputShapeMismatch, ModelCorrupt, ModelNotFound, first_line
from kubeopt.worker.frameworks import require


def check_exists(path: Path, uri: str) -> None:
    if not path.exists():
        raise ModelNotFound(f"model.uri: {uri} does not exist")


def load_torch_module(path: Path, fmt: ModelFormat, device: str) -> Any:
    """Return an eval-mode torch module from a TorchScript or torch.export (.pt2) file."""
    torch = require("torch", "torch-compile")
    try:
        if fmt is ModelFormat.TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location=device)
        else:
            module = torch.export.load(str(path)).module().to(device)
    except Exception as error:  # torch raises RuntimeError, ValueError, zipfile errors...
        raise ModelCorrupt(f"model.uri: {path.name} is not a readable {fmt.value} model: "
                           f"{first_line(error)}") from error
    if fmt is ModelFormat.TORCHSCRIPT:
        module.eval()
    return module  # an exported program's module is already in inference form (eval() is refused)


def check_onnx(path: Path, inputs: list[TensorSpec]) -> None:
    """Validate an ONNX file and check the declared inputs against the graph's."""
    onnx = require("onnx", "onnxruntime")
    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelCorrupt(f"model.uri: {path.name} is not a valid ONNX model: {first_line(error)}") from error
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = {i.name: i for i in model.graph.input if i.name not in initializers}
    for index, spec in enumerate(inputs):
        if spec.name not in graph_inputs:
            raise InputShapeMismatch(f"model.inputs[{index}].name: {spec.name!r} is not an input of the model; "
                                     f"its inputs are {', '.join(graph_inputs)}")
        dims = graph_inputs[spec.name].type.tensor_type.shape.dim
        actual = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        check_shape(index, spec, actual)


def check_shape(index: int, spec: TensorSpec, actual: list[int]) -> None:
    """Raise InputShapeMismatch when the declared shape contradicts the model's (-1 matches anything)."""
    fits = len(actual) == len(spec.shape) and all(
        a == -1 or s == -1 or a == s for a, s in zip(actual, spec.shape, strict=True))
    if not fits:
        raise InputShapeMismatch(f"model.inputs[{index}].shape: {spec.shape} does not match the model's "
                                 f"{actual} for input {spec.name!r} (-1 is dynamic)")
