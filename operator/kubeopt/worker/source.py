"""The source model, turned on demand into the representation a backend consumes.

Conversions run at most once per process: a local run with several ONNX targets exports a
torch model to ONNX once. Loading checks the model against the declared inputs, so a wrong
shape fails early with InputShapeMismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from kubeopt.api.spec import ModelFormat, ModelSource
from kubeopt.worker import convert, loaders
from kubeopt.worker.errors import InputShapeMismatch, InvalidSpec, first_line


class Representation(StrEnum):
    ONNX = "onnx"
    TORCH = "torch"
    TENSORFLOW = "tensorflow"


FAMILY: dict[ModelFormat, Representation] = {
    ModelFormat.ONNX: Representation.ONNX,
    ModelFormat.TORCHSCRIPT: Representation.TORCH,
    ModelFormat.TORCH_EXPORT: Representation.TORCH,
    ModelFormat.TENSORFLOW_SAVEDMODEL: Representation.TENSORFLOW,
    ModelFormat.KERAS: Representation.TENSORFLOW,
}


@dataclass
class SourceModel:
    """A model file on local disk plus its declared inputs; converts lazily and caches."""

    spec: ModelSource
    path: Path
    workspace: Path
    device: str
    example: dict[str, np.ndarray]
    _onnx: Path | None = field(default=None, init=False)

    @property
    def family(self) -> Representation:
        return FAMILY[self.spec.format]

    def torch_module(self) -> Any:
        """A fresh fp32 eval-mode module on the device (fresh: backends change dtype in place)."""
        if self.family is not Representation.TORCH:
            raise InvalidSpec(f"model.format {self.spec.format.value} cannot be turned into a torch module; "
                              "torch-compile needs model.format torch-export")
        module = loaders.load_torch_module(self.path, self.spec.format, self.device)
        self._check_torch_inputs(module)
        return module

    def onnx_path(self) -> Path:
        """The model as ONNX: the file itself, or converted once with torch2onnx / tf2onnx."""
        if self._onnx is not None:
            return self._onnx
        if self.family is Representation.ONNX:
            loaders.check_onnx(self.path, self.spec.inputs)
            self._onnx = self.path
        elif self.family is Representation.TORCH:
            module = loaders.load_torch_module(self.path, self.spec.format, "cpu")
            self._check_torch_inputs(module)
            self._onnx = convert.torch2onnx(module, self.spec.format, self.spec.inputs, self.example,
                                            self.workspace / "converted" / "model.onnx")
        else:
            self._onnx = convert.tf2onnx(self.path, self.spec.format, self.spec.inputs,
                                         self.workspace / "converted" / "model.onnx")
        return self._onnx

    def saved_model_path(self) -> Path:
        if self.family is not Representation.TENSORFLOW:
            raise InvalidSpec(f"tf-trt needs a TensorFlow model; model.format is {self.spec.format.value}")
        return self.path

    def _check_torch_inputs(self, module: Any) -> None:
        """Run the example batch once: a wrong declared shape fails here, with the model's words."""
        import torch

        tensors = [torch.from_numpy(self.example[s.name]).to(self.device) for s in self.spec.inputs]
        try:
            with torch.inference_mode():
                module(*tensors)
        except (RuntimeError, TypeError, ValueError, IndexError, AssertionError) as error:  # guards assert
            shapes = {s.name: s.shape for s in self.spec.inputs}
            first = first_line(error)
            raise InputShapeMismatch(f"model.inputs: the model rejects inputs shaped {shapes}: {first}") from error
