"""INT8 calibration as its own stage: a Q/DQ ONNX model, or a PT2E-quantized torch graph.

TensorRT 10.1 deprecated implicit calibrators and TensorRT 11 removed them, so INT8 for the
ONNX backends is an explicitly quantized (Q/DQ) ONNX file written here, on the CPU, by ONNX
Runtime's ``quantize_static`` (or NVIDIA ModelOpt where installed). The recipe differs per
consumer: TensorRT needs symmetric int8 activations; ONNX Runtime on x86 is fastest with
uint8 activations (U8S8). Every result carries provenance: data digest, samples, and what ran
(method, tool, algorithm, percentile), from ``kubeopt.worker.calibration_methods``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeopt.api.spec import Calibration, CalibrationMethod
from kubeopt.worker.calibration_methods import Calibrator
from kubeopt.worker.data import Dataset
from kubeopt.worker.errors import BuildFailed, CalibrationDataInvalid, UnsupportedOp, first_line
from kubeopt.worker.frameworks import require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxQuantRecipe:
    """How the Q/DQ model is written; chosen by the backend that will run it."""

    per_channel: bool = True
    activation_uint8: bool = False  # False: S8S8 symmetric (TensorRT); True: U8S8 (ORT on x86)
    symmetric_activations: bool = True
    quantize_bias: bool = True  # False: float biases, no int32 bias DequantizeLinear (TensorRT's parser)


def provenance(data: Dataset, settings: Calibration, samples: int, calibrator: Calibrator, tool: str,
               **extra: Any) -> dict[str, Any]:
    """calibration.json: the data, and what ran (``tool`` is the calibrator's tool with its version)."""
    return {
        "dataSha256": data.sha256,
        "dataUri": settings.uri,
        "samples": samples,
        "batchSize": settings.batch_size,
        **calibrator.provenance(),
        "tool": tool,
        **extra,
    }


def _calibration_set(data: Dataset | None, settings: Calibration) -> Dataset:
    if data is None or len(data) == 0:
        raise CalibrationDataInvalid("calibration.uri: no calibration samples could be read")
    if len(data) < settings.samples:
        log.warning("calibration: %d samples requested, %d available; using all", settings.samples, len(data))
    return data.take(settings.samples)


def quantize_onnx(model: Path, data: Dataset | None, settings: Calibration, recipe: OnnxQuantRecipe,
                  workdir: Path, calibrator: Calibrator) -> tuple[Path, dict[str, Any]]:
    """Write a Q/DQ ONNX model calibrated on ``data`` with ``calibrator`` (an ONNX Runtime one);
    return its path and provenance."""
    quantization = require("onnxruntime.quantization", "onnxruntime")
    shape_inference = require("onnxruntime.quantization.shape_inference", "onnxruntime")
    samples = _calibration_set(data, settings)
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = workdir / "preprocessed.onnx"
    output = workdir / "model.int8.qdq.onnx"
    try:
        # Shape inference and Conv+BatchNorm folding before quantization decide whether INT8 pays.
        shape_inference.quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    except Exception as error:
        log.warning("quant_pre_process failed (%s); quantizing the model as it is", error)
        prepared = model
    activation = quantization.QuantType.QUInt8 if recipe.activation_uint8 else quantization.QuantType.QInt8
    extra: dict[str, Any] = {
        "ActivationSymmetric": recipe.symmetric_activations,
        "WeightSymmetric": True,
        "QuantizeBias": recipe.quantize_bias,
    }
    if calibrator.percentile is not None:
        extra["CalibPercentile"] = calibrator.percentile
    try:
        quantization.quantize_static(
            str(prepared), str(output), _Reader(samples, settings.batch_size, quantization),
            quant_format=quantization.QuantFormat.QDQ, per_channel=recipe.per_channel,
            activation_type=activation, weight_type=quantization.QuantType.QInt8,
            calibrate_method=getattr(quantization.CalibrationMethod, calibrator.algorithm), extra_options=extra,
        )
    except (ValueError, KeyError) as error:
        raise CalibrationDataInvalid(f"calibration: quantize_static rejected the data: {error}") from error
    except Exception as error:
        if "NOT_IMPLEMENTED" in str(error):
            raise UnsupportedOp(f"calibration: {first_line(error)}") from error
        raise BuildFailed(f"calibration failed: {type(error).__name__}: {str(error)[:300]}") from error
    nodes = count_qdq_nodes(output)
    if nodes["QuantizeLinear"] == 0:
        raise BuildFailed("calibration produced no QuantizeLinear nodes: nothing in this model was quantized")
    version = getattr(require("onnxruntime", "onnxruntime"), "__version__", "?")
    return output, provenance(
        samples, settings, len(samples), calibrator, f"{calibrator.tool.value} (onnxruntime {version})",
        format="QDQ", perChannel=recipe.per_channel,
        activations="uint8-asymmetric" if recipe.activation_uint8 else "int8-symmetric",
        weights="int8-symmetric", quantizedNodes=nodes,
    )


def count_qdq_nodes(model: Path) -> dict[str, int]:
    onnx = require("onnx", "onnxruntime")
    graph = onnx.load(str(model), load_external_data=False).graph
    return {op: sum(1 for n in graph.node if n.op_type == op) for op in ("QuantizeLinear", "DequantizeLinear")}


class _Reader:
    """ONNX Runtime's CalibrationDataReader over a Dataset in fixed-size batches."""

    def __init__(self, data: Dataset, batch_size: int, quantization: Any) -> None:
        self._data = data
        self._batch_size = batch_size
        self._iterator: Iterator[dict[str, Any]] = data.batches(batch_size)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = self._data.batches(self._batch_size)


def quantize_torch_x86(module: Any, example: tuple[Any, ...], data: Dataset | None, settings: Calibration,
                       input_names: list[str], calibrator: Calibrator) -> tuple[Any, dict[str, Any]]:
    """PT2E static INT8 for CPU with the x86 Inductor quantizer, activations observed by
    ``calibrator``'s observer; return the converted graph and provenance."""
    torch = require("torch", "torch-compile")
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", "torch-compile")
    x86 = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "torch-compile")
    observers = require("torchao.quantization.pt2e", "torch-compile")
    samples = _calibration_set(data, settings)
    config = x86.get_default_x86_inductor_quantization_config()
    if calibrator.method is CalibrationMethod.MINMAX:  # the default config observes with HistogramObserver
        act = dataclasses.replace(
            config.input_activation, observer_or_fake_quant_ctr=observers.MinMaxObserver.with_args(eps=2**-12))
        config = x86.QuantizationConfig(act, act, config.weight, config.bias, False)
    quantizer = x86.X86InductorQuantizer().set_global(config)
    try:
        # AUTO: keep whatever batch range the source program already allows.
        dynamic = tuple({0: torch.export.Dim.AUTO} for _ in example)
        exported = torch.export.export(module, example, dynamic_shapes=dynamic).module()
    except Exception as error:
        raise UnsupportedOp(f"int8 torch-compile: torch.export failed: {first_line(error)}") from error
    prepared = pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for feeds in samples.batches(settings.batch_size):
            prepared(*(torch.from_numpy(feeds[name]) for name in input_names))
    converted = pt2e.convert_pt2e(prepared)
    ops = count_quantized_torch_ops(converted)
    if ops == 0:
        raise BuildFailed("calibration produced no quantize ops: nothing in this model was quantized")
    return converted, provenance(
        samples, settings, len(samples), calibrator, f"{calibrator.tool.value} (torch {torch.__version__})",
        observer=calibrator.algorithm, activations="uint8-asymmetric per-tensor", weights="int8-symmetric per-channel",
        quantizeOps=ops,
    )


def count_quantized_torch_ops(graph_module: Any) -> int:
    return sum(1 for node in graph_module.graph.nodes if "quantize_per" in str(node.target))
