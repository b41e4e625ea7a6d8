"""Converters named source-to-target: torch2onnx and tf2onnx; and the ONNX-to-ONNX steps that more
than one backend takes (copy_onnx, cast_to_fp16), here so that no backend imports another.

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
from kubeopt.worker.errors import BuildFailed, UnsupportedOp, first_line
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
    printed = io.StringIO()  # the exporters print reports; they belong in the log file, not the terminal
    try:
        with contextlib.redirect_stdout(printed):
            if fmt is ModelFormat.TORCHSCRIPT:
                torch.onnx.export(module, args, str(dest), input_names=names, dynamo=False,
                                  dynamic_axes={name: {0: "batch"} for name in names}, opset_version=ONNX_OPSET)
            else:
                torch.onnx.export(module, args, str(dest), input_names=names, dynamo=True,
                                  dynamic_shapes=tuple({0: torch.export.Dim.AUTO} for _ in names),
                                  opset_version=ONNX_OPSET,
                                  verbose=False, external_data=False)
    except Exception as error:
        log.debug("torch2onnx printed:\n%s", printed.getvalue())
        if exporter_unsupported(torch, error):
            raise UnsupportedOp(f"torch2onnx: {first_line(error)}") from error
        raise BuildFailed(f"torch2onnx failed: {type(error).__name__}: {first_line(error)}") from error
    if printed.getvalue():
        log.debug("torch2onnx printed:\n%s", printed.getvalue())
    log.info("torch2onnx wrote %s", dest.name)
    return dest


def exporter_unsupported(torch: Any, error: BaseException) -> bool:
    """True when the exporter met an operator or construct it cannot translate: torch's own
    ``torch.onnx.errors.UnsupportedOperatorError`` (TorchScript exporter) or Dynamo's
    ``Unsupported`` (dynamo exporter), found through the ``__cause__`` chain, since the dynamo
    exporter wraps what it met. The text check stays for exporter errors that carry no type
    of their own (the dynamo exporter's ConversionError says "not supported")."""
    kinds = tuple(kind for kind in (
        getattr(getattr(getattr(torch, "onnx", None), "errors", None), "UnsupportedOperatorError", None),
        getattr(getattr(getattr(torch, "_dynamo", None), "exc", None), "Unsupported", None),
    ) if isinstance(kind, type))
    seen: BaseException | None = error
    while seen is not None:
        if kinds and isinstance(seen, kinds):
            return True
        seen = seen.__cause__
    text = str(error).lower()
    return "unsupported" in text or "not supported" in text


def tf2onnx(saved_model: Path, fmt: ModelFormat, inputs: list[TensorSpec], dest: Path) -> Path:
    """Convert a Keras file or a TensorFlow SavedModel (serving_default signature) to ONNX.

    tf2onnx names graph inputs after TensorFlow tensors ("pixels:0"); they are renamed to the
    spec's input names so the ONNX model takes the same feeds as the source.
    """
    tf = require("tensorflow", "onnxruntime")
    converter = require("tf2onnx", "onnxruntime")
    onnx = require("onnx", "onnxruntime")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt is ModelFormat.KERAS:
            specs = tuple(tf.TensorSpec([None if d == -1 else d for d in s.shape], s.dtype, name=s.name)
                          for s in inputs)
            model = tf.keras.models.load_model(str(saved_model))
            converter.convert.from_keras(model, input_signature=specs, opset=ONNX_OPSET, output_path=str(dest))
        else:
            loader = require("tf2onnx.tf_loader", "onnxruntime")
            graph, graph_inputs, graph_outputs = loader.from_saved_model(
                str(saved_model), None, None, tag=None, signatures=["serving_default"])
            converter.convert.from_graph_def(graph, input_names=graph_inputs, output_names=graph_outputs,
                                             opset=ONNX_OPSET, output_path=str(dest))
    except Exception as error:
        raise UnsupportedOp(f"tf2onnx: {first_line(error)}") from error
    model = onnx.load(str(dest))
    rename_inputs(model, {s.name: s.name for s in inputs})
    onnx.save(model, str(dest))
    log.info("tf2onnx wrote %s", dest.name)
    return dest


def rename_inputs(model: Any, wanted: dict[str, str]) -> None:
    """Rename graph inputs such as "pixels:0" to "pixels" (and every use of them)."""
    renames = {}
    for graph_input in model.graph.input:
        base = graph_input.name.split(":")[0]
        if graph_input.name not in wanted and base in wanted:
            renames[graph_input.name] = wanted[base]
    for graph_input in model.graph.input:
        graph_input.name = renames.get(graph_input.name, graph_input.name)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]


def copy_onnx(source: Path, dest: Path) -> Path:
    """Copy an ONNX model into one self-contained file (external data, if any, inlined)."""
    onnx = require("onnx", "onnxruntime")
    onnx.save(onnx.load(str(source)), str(dest), save_as_external_data=False)
    return dest


def cast_to_fp16(model: Path, dest: Path) -> Path:
    """Weights and compute in fp16, inputs and outputs kept fp32 so callers need not change."""
    onnx = require("onnx", "onnxruntime")
    float16 = require("onnxruntime.transformers.float16", "onnxruntime")
    converted = float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    onnx.save(converted, str(dest))
    return dest
