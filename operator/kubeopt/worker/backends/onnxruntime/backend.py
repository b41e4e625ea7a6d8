"""ONNX Runtime backend: fp32, fp16 (cast model) and int8 (Q/DQ from the calibration stage)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from kubeopt.api.spec import BackendName, OnnxRuntimeOptions, Precision
from kubeopt.worker import calibration
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.onnxruntime.runner import ORT_LEVELS, OrtRunner, choose_providers
from kubeopt.worker.calibration_methods import Tool, calibrator
from kubeopt.worker.convert import cast_to_fp16, copy_onnx
from kubeopt.worker.errors import BuildFailed, InvalidSpec, UnsupportedOp, first_line
from kubeopt.worker.frameworks import require
from kubeopt.worker.source import Representation

UNSUPPORTED_SIGNS = ("NOT_IMPLEMENTED", "Could not find an implementation", "is not a registered function/op")


def make_session(model: Path, options: OnnxRuntimeOptions, device: str, backend: str = "onnxruntime") -> Any:
    """Create an InferenceSession; unsupported operators become UnsupportedOp."""
    ort = require("onnxruntime", backend)
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                       ORT_LEVELS[options.graph_optimization_level])
    session_options.intra_op_num_threads = options.intra_op_threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.log_severity_level = 3
    try:
        providers = choose_providers(options.execution_provider, ort.get_available_providers(), device)
    except ValueError as error:
        raise InvalidSpec(f"onnxruntime.executionProvider: {error}") from error
    try:
        return ort.InferenceSession(str(model), session_options, providers=providers)
    except Exception as error:
        text = str(error)
        if any(sign in text for sign in UNSUPPORTED_SIGNS):
            raise UnsupportedOp(f"onnxruntime cannot run this model: {first_line(error)}") from error
        raise BuildFailed(f"onnxruntime session failed: {first_line(error)}") from error


class OnnxRuntimeBackend:
    name: ClassVar[BackendName] = BackendName.ONNXRUNTIME
    consumes: ClassVar[Representation] = Representation.ONNX

    def check_available(self, device: str) -> None:
        require("onnxruntime", self.name.value)
        require("onnx", self.name.value)

    def build(self, context: BuildContext) -> Built:
        options = context.target.onnxruntime or OnnxRuntimeOptions()
        precision = context.target.precision
        source = context.source.onnx_path()
        model_path = context.artifact_dir / "model.onnx"
        provenance = None
        started = time.perf_counter()  # the session (load) adds its own seconds
        if precision is Precision.INT8:
            assert context.spec.calibration is not None  # the spec validator guarantees it
            recipe = calibration.OnnxQuantRecipe(
                per_channel=options.per_channel, activation_uint8=options.activation_type == "uint8",
                symmetric_activations=options.activation_type == "int8")
            quantized, provenance = calibration.quantize_onnx(
                source, context.calibration, context.spec.calibration, recipe, context.workspace / "calibration",
                calibrator(Tool.ONNXRUNTIME, self.name, context.spec.calibration))
            copy_onnx(quantized, model_path)
        elif precision is Precision.FP16:
            cast_to_fp16(source, model_path)
        else:
            copy_onnx(source, model_path)
        return Built(None, time.perf_counter() - started, calibration=provenance,
                     details={"precision": precision.value}, model_files=("model.onnx", "session.json"))

    def load(self, context: BuildContext, built: Built) -> Built:
        """An InferenceSession on the written model.onnx, with the target's session options."""
        options = context.target.onnxruntime or OnnxRuntimeOptions()
        started = time.perf_counter()
        session = make_session(context.artifact_dir / "model.onnx", options, context.device)
        settings = {"graphOptimizationLevel": options.graph_optimization_level,
                    "intraOpThreads": options.intra_op_threads, "interOpThreads": options.inter_op_threads,
                    "providers": session.get_providers(), **built.details}
        (context.artifact_dir / "session.json").write_text(json.dumps(settings, indent=2))
        return replace(built, runner=OrtRunner(session), details=settings,
                       compile_seconds=built.compile_seconds + time.perf_counter() - started)
