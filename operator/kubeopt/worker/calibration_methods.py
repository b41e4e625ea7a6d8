"""Calibration methods as each tool runs them: the one mapping from the spec's method to a tool.

The method names live in the API (``kubeopt.api.backends.CalibrationMethod``) and each
backend's description lists the methods it offers, so the spec check and the CRD refuse any
other before a Job starts. Here each tool that calibrates lists the algorithm it runs for each
method it has. Nothing falls back: a method a tool lacks raises InvalidSpec naming
``calibration.method`` and what the tool runs (a test keeps every backend's tools in step with
its description). The provenance says what actually ran: method, tool, algorithm, and the
percentile when the method is percentile.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubeopt.api.backends import BackendName, CalibrationMethod
from kubeopt.api.spec import Calibration
from kubeopt.worker.errors import InvalidSpec


class Tool(StrEnum):
    ONNXRUNTIME = "onnxruntime.quantization.quantize_static"
    MODELOPT = "modelopt.onnx.quantization"
    PT2E_X86 = "torchao.pt2e X86InductorQuantizer"
    TF_TRT = "TF-TRT TrtGraphConverterV2"


# What each tool runs for each method, in the tool's own words.
ALGORITHMS: dict[Tool, dict[CalibrationMethod, str]] = {
    # onnxruntime.quantization.CalibrationMethod members.
    Tool.ONNXRUNTIME: {CalibrationMethod.ENTROPY: "Entropy", CalibrationMethod.MINMAX: "MinMax",
                       CalibrationMethod.PERCENTILE: "Percentile"},
    # modelopt.onnx.quantization.quantize(calibration_method=...) for int8.
    Tool.MODELOPT: {CalibrationMethod.ENTROPY: "entropy", CalibrationMethod.MINMAX: "max"},
    # Activation observers of torchao's PT2E (the x86 quantizer's default is the histogram one).
    Tool.PT2E_X86: {CalibrationMethod.HISTOGRAM: "HistogramObserver", CalibrationMethod.MINMAX: "MinMaxObserver"},
    # TF-TRT's TRTInt8Calibrator is a TensorRT IInt8EntropyCalibrator2; TrtConversionParams has no choice.
    Tool.TF_TRT: {CalibrationMethod.ENTROPY: "IInt8EntropyCalibrator2"},
}

# The tools each backend calibrates with, in the order it prefers them.
TOOLS: dict[BackendName, tuple[Tool, ...]] = {
    BackendName.TENSORRT: (Tool.MODELOPT, Tool.ONNXRUNTIME),
    BackendName.TF_TRT: (Tool.TF_TRT,),
    BackendName.ONNXRUNTIME: (Tool.ONNXRUNTIME,),
    BackendName.TORCH_COMPILE: (Tool.PT2E_X86,),
}


@dataclass(frozen=True)
class Calibrator:
    """What one calibration runs: the spec's method, the tool, its algorithm and percentile."""

    method: CalibrationMethod
    tool: Tool
    algorithm: str
    percentile: float | None = None

    def provenance(self) -> dict[str, Any]:
        """The part of calibration.json that says what ran."""
        recorded: dict[str, Any] = {"method": self.method.value, "algorithm": self.algorithm}
        if self.percentile is not None:
            recorded["percentile"] = self.percentile
        return recorded


def offers(tool: Tool, method: CalibrationMethod) -> bool:
    return method in ALGORITHMS[tool]


def calibrator(tool: Tool, backend: BackendName, settings: Calibration) -> Calibrator:
    """The calibrator ``tool`` runs for the method the spec asks of ``backend`` (its default when unset).

    Raises InvalidSpec naming calibration.method when the tool has no such method.
    """
    method = settings.method_for(backend)
    algorithms = ALGORITHMS[tool]
    if method not in algorithms:
        offered = ", ".join(m.value for m in algorithms)
        raise InvalidSpec(f"calibration.method: {tool.value} (backend {backend.value}) has no {method.value} "
                          f"calibration; it runs {offered}")
    percentile = settings.percentile if method is CalibrationMethod.PERCENTILE else None
    return Calibrator(method, tool, algorithms[method], percentile)
