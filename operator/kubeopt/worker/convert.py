"""Converters named source-to-target: torch2onnx and tf2onnx.

Each writes an ONNX file into the workspace and returns its path. An operator the exporter
cannot translate becomes UnsupportedOp with the exporter's own words.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from kubeopt.api.spec import ModelFormat, TensorSpec
from kubeopt.worker.errors import BuildFailed, UnsupportedOp
from kubeopt.worker.frameworks import require

log = logging.getLogger(__name__)
ONNX_OPSET = 18


def torch2onnx(module: Any, fmt: ModelFormat, inputs: list[TensorSpec], example: dict[str, Any],
               dest: Path) -> Path:
    """Export a torch module to ONNX with a dynamic batch dimension.

    TorchScript modules go through the TorchScript exporter (dynamo cannot trace them);
    everything else through the dynamo exporter.
    """
    torch = require("torch", "torch-compile")
    require("onnx", "onnxruntime")
    names = [spec.name for spec in inputs]
    args = tuple(torch.from_numpy(example[name]) for name in names)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if fmt is ModelFormat.TORCHSCRIPT:
                torch.onnx.export(module, args, str(dest), input_names=names, dynamo=False,
                                  dynamic_axes={name: {0: "batch"} for name in names}, opset_version=ONNX_OPSET)
            else:
                torch.onnx.export(module, args, str(dest), input_names=names, dynamo=True,
                                  dynamic_shapes=tuple({0: torch.export.Dim.AUTO} for _ in names),
                                  opset_version=ONNX_OPSET,
                                  verbose=False, external_data=False)
    except Exception as error:
        text = str(error)
        if "unsupported" in text.lower() or "not supported" in text.lower():
            raise UnsupportedOp(f"torch2onnx: {text.splitlines()[0][:300]}") from error
        raise BuildFailed(f"torch2onnx failed: {type(error).__name__}: {text.splitlines()[0][:300]}") from error
    log.info("torch2onnx wrote %s", dest.name)
    return dest


def tf2onnx(saved_model: Path, fmt: ModelFormat, inputs: list[TensorSpec], dest: Path) -> Path:
    """Convert a TensorFlow SavedModel or Keras file to ONNX with the tf2onnx package."""
    tf = require("tensorflow", "tf-trt")
    converter = require("tf2onnx", "onnxruntime")
    specs = tuple(tf.TensorSpec([None if d == -1 else d for d in s.shape], s.dtype, name=s.name) for s in inputs)
    try:
        if fmt is ModelFormat.KERAS:
            model = tf.keras.models.load_model(str(saved_model))
            converter.convert.from_keras(model, input_signature=specs, opset=ONNX_OPSET, output_path=str(dest))
        else:
            loaded = tf.saved_model.load(str(saved_model))
            function = loaded.signatures["serving_default"]
            converter.convert.from_function(function, input_signature=specs, opset=ONNX_OPSET, output_path=str(dest))
    except Exception as error:
        raise UnsupportedOp(f"tf2onnx: {str(error).splitlines()[0][:300]}") from error
    return dest
