"""Read a source model from local disk, one loader per format, with typed errors.

An operator the model holds but nothing here defines (a custom op whose library this image
does not import, a name ONNX's default domain does not have) is UnsupportedOp naming the
operator; ModelCorrupt is kept for files that cannot be read at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubeopt.api.spec import ModelFormat, TensorSpec
from kubeopt.worker.errors import InputShapeMismatch, ModelCorrupt, ModelNotFound, UnsupportedOp, first_line
from kubeopt.worker.frameworks import require

# torch.export's deserializer on an operator not registered in this process (it logs this, then
# raises a RuntimeError that names nothing); TorchScript's loader on one it does not know.
UNREGISTERED_TORCH_OP = re.compile(
    r"failed to resolve (torch\.ops\.[\w.]+) to an operator|Unknown builtin op: ([\w:.]+)")
UNKNOWN_ONNX_OP = re.compile(r"No Op registered for (\S+) with domain_version of (\d+)")


def check_exists(path: Path, uri: str) -> None:
    if not path.exists():
        raise ModelNotFound(f"model.uri: {uri} does not exist")


def load_torch_module(path: Path, fmt: ModelFormat, device: str) -> Any:
    """Return an eval-mode torch module from a TorchScript or torch.export (.pt2) file."""
    torch = require("torch", "torch-compile")
    try:
        with _logged_errors("torch.export") as logged:
            if fmt is ModelFormat.TORCHSCRIPT:
                module = torch.jit.load(str(path), map_location=device)
            else:
                module = torch.export.load(str(path)).module().to(device)
    except Exception as error:  # torch raises RuntimeError, ValueError, zipfile errors...
        found = UNREGISTERED_TORCH_OP.search("\n".join([*logged, str(error)]))
        if found:
            raise UnsupportedOp(f"model.uri: {path.name} holds the operator {found.group(1) or found.group(2)}, which "
                                "no library loaded here registers (a custom op): export the model without it, or "
                                "run it in an image whose worker imports the library that defines it") from error
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
        found = UNKNOWN_ONNX_OP.search(str(error))
        if found:
            raise UnsupportedOp(f"model.uri: {path.name} uses the operator {found.group(1)}, which ONNX's default "
                                f"domain does not have at opset {found.group(2)}: replace it with ONNX operators, or "
                                "give it the custom domain of a library with a kernel for it") from error
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


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage() + "\n" + (logging.Formatter().formatException(record.exc_info)
                                                        if record.exc_info else ""))


@contextmanager
def _logged_errors(logger_name: str) -> Iterator[list[str]]:
    """The warnings ``logger_name`` logs inside the block, tracebacks included (torch.export.load
    logs the deserializer's error and raises one that does not carry it)."""
    logged: list[str] = []
    handler = _Collect(logged)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield logged
    finally:
        logger.removeHandler(handler)
