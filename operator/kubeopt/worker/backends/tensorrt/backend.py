"""TensorRT backend: ONNX parser to a serialized engine, written for TensorRT 10 and 11.

TensorRT 11 removed the precision builder flags and the calibrator API, so the network is
always *strongly typed*: precision comes from the ONNX file itself. fp16 is an fp16-cast
ONNX model; int8 is the Q/DQ model from the calibration stage (symmetric S8S8, which is what
TensorRT's explicit quantization accepts), written by NVIDIA ModelOpt where installed, else
by ONNX Runtime with ``QuantizeBias: False``: biases stay float, since TensorRT's ONNX parser
has refused the int32 bias DequantizeLinear nodes ONNX Runtime writes by default (and
TensorRT quantizes biases itself). One optimization profile (min/opt/max) is derived from
the declared input shapes and the benchmark's batch sizes. The timing cache is saved with
the artifacts and offered to the next build of the same target; whether TensorRT accepted
it (``ITimingCache.combine`` is false for a cache of another TensorRT version or device) is
what the report's ``timingCache`` and the status's ``cacheHit`` say, not that a file existed.

Every TensorRT call here and in ``runner.py``, and the documentation it was checked against (TensorRT 10: the
10.x Python API reference; TensorRT 11: the 11.x Python API reference and the "Migrating
Python code from TensorRT 10.x to 11.x" guide, which list what 11 removed):

==========================================================  ====  ====
call                                                         10    11
==========================================================  ====  ====
``trt.Logger(trt.Logger.WARNING)``                           yes   yes
``trt.Builder(logger)``, ``builder.create_network(flags)``   yes   yes
``trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED``         yes   strong typing is always on;
                                                                   the flag is used where present
``trt.OnnxParser(network, logger)``, ``parse_from_file``     yes   yes
``parser.num_errors``, ``get_error(i).desc()/.code()``       yes   yes
``builder.create_builder_config()``                          yes   yes
``config.set_memory_pool_limit(MemoryPoolType.WORKSPACE)``   yes   yes
``config.builder_optimization_level``                        yes   yes
``builder.create_optimization_profile()``, ``set_shape``     yes   yes
``config.add_optimization_profile(profile)``                 yes   yes
``config.create_timing_cache(bytes)``                        yes   yes
``ITimingCache.combine(cache, ignore_mismatch)`` -> bool     yes   yes
``config.set_timing_cache(cache, ignore_mismatch)``          yes   yes
``config.get_timing_cache().serialize()``                    yes   yes
``builder.build_serialized_network(network, config)``        yes   yes
``trt.Runtime(logger).deserialize_cuda_engine(bytes)``       yes   yes
``engine.num_io_tensors``, ``get_tensor_name/mode/dtype``    yes   yes
``engine.create_execution_context()``                        yes   yes
``context.set_input_shape``, ``set_tensor_address``          yes   yes
``context.get_tensor_shape``, ``execute_async_v3(stream)``   yes   yes
``trt.nptype(dtype)``, ``trt.TensorIOMode.INPUT``            yes   yes
==========================================================  ====  ====

Not used, because 11 removed them: ``BuilderFlag.FP16/INT8/BF16/FP8``, ``int8_calibrator``
and the ``IInt8*Calibrator`` classes, ``OBEY/PREFER_PRECISION_CONSTRAINTS``.
The module was checked against the documentation only: TensorRT cannot be installed from the
registries this project reaches, so no call here has run in CI or on the benchmark card.

This image family cannot install TensorRT from the public registries; without the
``tensorrt`` module every build raises BackendUnavailable naming the TensorRT image.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kubeopt.api.spec import (
    BackendName,
    CalibrationMethod,
    Precision,
    TensorRTOptions,
    TensorSpec,
)
from kubeopt.worker import calibration
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.tensorrt.runner import TensorRTRunner
from kubeopt.worker.calibration_methods import Tool, calibrator, offers
from kubeopt.worker.convert import cast_to_fp16, copy_onnx
from kubeopt.worker.errors import BuildFailed, InvalidSpec, UnsupportedOp
from kubeopt.worker.frameworks import require
from kubeopt.worker.source import Representation

log = logging.getLogger(__name__)
ENGINE_FILE = "model.plan"
TIMING_CACHE_FILE = "timing.cache"
# How ONNX Runtime writes a Q/DQ model for TensorRT: symmetric int8 activations and weights,
# per-channel weights, float biases (no int32 bias DequantizeLinear).
QDQ_RECIPE = calibration.OnnxQuantRecipe(per_channel=True, activation_uint8=False, symmetric_activations=True,
                                         quantize_bias=False)


class TimingCache(StrEnum):
    """What became of the previous build's timing cache."""

    NONE = "none"  # no previous cache, or timingCache is off
    ACCEPTED = "accepted"  # TensorRT combined it into this build's cache
    REJECTED = "rejected"  # another TensorRT version or device, or not a timing cache: built from scratch


def attach_timing_cache(config: Any, previous: bytes) -> TimingCache:
    """Give the builder a fresh timing cache with ``previous`` combined into it when TensorRT
    accepts it; return what became of ``previous``. ``combine`` refuses (false) a cache of
    another TensorRT version, or of another device since ``ignore_mismatch`` is false."""
    cache = config.create_timing_cache(b"")
    outcome = TimingCache.NONE
    if previous:
        try:
            loaded = config.create_timing_cache(previous)
            accepted = loaded is not None and bool(cache.combine(loaded, False))
        except Exception as error:  # an unreadable buffer: TensorRT's own exception type varies
            log.warning("the stored timing cache is unreadable (%s); building without it", error)
            accepted = False
        outcome = TimingCache.ACCEPTED if accepted else TimingCache.REJECTED
    config.set_timing_cache(cache, False)
    return outcome


@dataclass(frozen=True)
class ProfileShapes:
    minimum: tuple[int, ...]
    optimum: tuple[int, ...]
    maximum: tuple[int, ...]


def optimization_profile(inputs: list[TensorSpec], batch_sizes: list[int], options: TensorRTOptions,
                         example: dict[str, np.ndarray]) -> dict[str, ProfileShapes]:
    """min/opt/max shapes per input: batch from 1 to the largest benchmark batch (or the options);
    other dynamic dimensions are fixed to the example data's size.

    Raises InvalidSpec when optBatchSize is larger than maxBatchSize.
    """
    largest = max(batch_sizes)
    maximum = options.max_batch_size or largest
    optimum = options.opt_batch_size or min(largest, maximum)
    if optimum > maximum:
        raise InvalidSpec(f"tensorrt.optBatchSize {optimum} is larger than tensorrt.maxBatchSize {maximum}")
    profiles: dict[str, ProfileShapes] = {}
    for spec in inputs:
        rest = tuple(d if d != -1 else int(example[spec.name].shape[i + 1]) for i, d in enumerate(spec.shape[1:]))
        if spec.shape[0] != -1:  # a fixed batch dimension cannot be profiled
            fixed = (spec.shape[0], *rest)
            profiles[spec.name] = ProfileShapes(fixed, fixed, fixed)
            continue
        profiles[spec.name] = ProfileShapes((1, *rest), (optimum, *rest), (maximum, *rest))
    return profiles


def builder_settings(options: TensorRTOptions, precision: Precision) -> dict[str, Any]:
    """The engine's build configuration as the report records it."""
    return {
        "networkFlags": ["STRONGLY_TYPED"],
        "precisionSource": {Precision.FP32: "fp32 ONNX", Precision.FP16: "fp16-cast ONNX",
                            Precision.INT8: "Q/DQ ONNX (explicit quantization)"}[precision],
        "workspaceBytes": options.workspace_bytes,
        "builderOptimizationLevel": options.builder_optimization_level,
        "timingCache": options.timing_cache,
    }


def choose_quantizer(options: TensorRTOptions, modelopt_installed: bool, method: CalibrationMethod) -> Tool:
    """The tool that writes the Q/DQ model. auto: ModelOpt where installed and it has the method
    (it has no percentile), else ONNX Runtime. Raises InvalidSpec when modelopt is asked for but
    missing, or lacks the method."""
    if options.quantizer == "modelopt" and not modelopt_installed:
        raise InvalidSpec("tensorrt.quantizer: modelopt is not installed in this image; use auto or onnxruntime")
    if options.quantizer == "modelopt" and not offers(Tool.MODELOPT, method):
        raise InvalidSpec(f"tensorrt.quantizer: modelopt has no {method.value} calibration (calibration.method); "
                          "use quantizer auto or onnxruntime, or another method")
    if options.quantizer == "auto":
        return Tool.MODELOPT if modelopt_installed and offers(Tool.MODELOPT, method) else Tool.ONNXRUNTIME
    return Tool.MODELOPT if options.quantizer == "modelopt" else Tool.ONNXRUNTIME


class TensorRTBackend:
    name: ClassVar[BackendName] = BackendName.TENSORRT
    consumes: ClassVar[Representation] = Representation.ONNX

    def check_available(self, device: str) -> None:
        require("tensorrt", self.name.value)
        if not device.startswith("cuda"):
            raise InvalidSpec("tensorrt targets need a GPU: set resources.gpu >= 1")

    def build(self, context: BuildContext) -> Built:
        trt = require("tensorrt", self.name.value)
        options = context.target.tensorrt or TensorRTOptions()
        precision = context.target.precision
        onnx_model, provenance = self._typed_onnx(context, options, precision)
        profile = optimization_profile(context.spec.model.inputs, context.spec.benchmark.batch_sizes, options,
                                       context.source.example)
        started = time.perf_counter()
        engine_bytes, timing_cache = self._build_engine(trt, onnx_model, options, profile, context)
        cache_hit = timing_cache is TimingCache.ACCEPTED
        compile_seconds = time.perf_counter() - started
        (context.artifact_dir / ENGINE_FILE).write_bytes(engine_bytes)
        settings = {**builder_settings(options, precision), "tensorrt": trt.__version__,
                    "timingCacheReused": timing_cache.value,
                    "profile": {k: vars(v) for k, v in profile.items()}}
        (context.artifact_dir / "build.json").write_text(json.dumps(settings, indent=2, default=list))
        return Built(None, compile_seconds, cache_hit=cache_hit, calibration=provenance, details=settings,
                     model_files=(ENGINE_FILE, "model.onnx", "build.json", TIMING_CACHE_FILE))

    def load(self, context: BuildContext, built: Built) -> Built:
        """The engine deserialized from the written model.plan, as Triton's TensorRT backend reads it."""
        trt = require("tensorrt", self.name.value)
        engine_bytes = (context.artifact_dir / ENGINE_FILE).read_bytes()
        return replace(built, runner=TensorRTRunner(trt, engine_bytes, context.spec))

    def _typed_onnx(self, context: BuildContext, options: TensorRTOptions,
                    precision: Precision) -> tuple[Path, dict[str, Any] | None]:
        source = context.source.onnx_path()
        dest = context.artifact_dir / "model.onnx"
        if precision is Precision.FP16:
            return cast_to_fp16(source, dest), None
        if precision is not Precision.INT8:
            return copy_onnx(source, dest), None
        settings = context.spec.calibration
        assert settings is not None
        tool = choose_quantizer(options, _installed("modelopt.onnx.quantization"), settings.method_for(self.name))
        if tool is Tool.MODELOPT:
            return self._modelopt_qdq(source, context, dest)
        qdq, provenance = calibration.quantize_onnx(source, context.calibration, settings, QDQ_RECIPE,
                                                    context.workspace / "calibration",
                                                    calibrator(tool, self.name, settings))
        return copy_onnx(qdq, dest), provenance

    def _modelopt_qdq(self, source: Path, context: BuildContext, dest: Path) -> tuple[Path, dict[str, Any]]:
        modelopt = require("modelopt.onnx.quantization", self.name.value)
        settings = context.spec.calibration
        assert settings is not None and context.calibration is not None
        data = context.calibration.take(settings.samples)
        used = calibrator(Tool.MODELOPT, self.name, settings)
        modelopt.quantize(str(source), quantize_mode="int8", calibration_data=data.inputs,
                          calibration_method=used.algorithm, output_path=str(dest))
        return dest, calibration.provenance(data, settings, len(data), used, used.tool.value,
                                            quantizedNodes=calibration.count_qdq_nodes(dest))

    def _build_engine(self, trt: Any, onnx_model: Path, options: TensorRTOptions,
                      profile: dict[str, ProfileShapes], context: BuildContext) -> tuple[bytes, TimingCache]:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # 11: always
        network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_model)):
            errors = [parser.get_error(i) for i in range(parser.num_errors)]
            text = "; ".join(str(e.desc()) for e in errors)[:400]
            if any("UNSUPPORTED" in str(e.code()) for e in errors):
                raise UnsupportedOp(f"tensorrt ONNX parser: {text}")
            raise BuildFailed(f"tensorrt ONNX parser: {text}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
        config.builder_optimization_level = options.builder_optimization_level
        trt_profile = builder.create_optimization_profile()
        for name, shapes in profile.items():
            trt_profile.set_shape(name, shapes.minimum, shapes.optimum, shapes.maximum)
        config.add_optimization_profile(trt_profile)
        previous = b""
        if options.timing_cache and context.previous_artifact is not None:
            cached = context.previous_artifact / TIMING_CACHE_FILE
            previous = cached.read_bytes() if cached.exists() else b""
        timing_cache = attach_timing_cache(config, previous)
        if timing_cache is TimingCache.REJECTED:
            log.warning("TensorRT rejected the stored timing cache (another TensorRT version or device); "
                        "timing every tactic again")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BuildFailed("tensorrt: build_serialized_network returned nothing; see the builder log above")
        if options.timing_cache:
            (context.artifact_dir / TIMING_CACHE_FILE).write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(serialized), timing_cache


def _installed(module: str) -> bool:
    try:
        require(module, "tensorrt")
    except Exception:
        return False
    return True
