from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubeopt.api.load import parse_resource
from kubeopt.api.spec import CalibrationMethod, Precision, TensorRTOptions, TensorSpec
from kubeopt.worker.backends.base import BuildContext
from kubeopt.worker.backends.tensorrt import backend as tensorrt
from kubeopt.worker.backends.tensorrt.backend import (
    ProfileShapes,
    TensorRTBackend,
    TimingCache,
    attach_timing_cache,
    builder_settings,
    choose_quantizer,
    optimization_profile,
)
from kubeopt.worker.calibration_methods import Tool
from kubeopt.worker.data import load_dataset
from kubeopt.worker.errors import BackendUnavailable, CalibrationDataInvalid, InvalidSpec
from kubeopt.worker.source import SourceModel
from tests.conftest import digits_resource

IMAGE = [TensorSpec(name="images", shape=[-1, 3, 224, 224])]


def test_profile_spans_batch_one_to_the_largest_benchmark_batch() -> None:
    profile = optimization_profile(IMAGE, [1, 32, 128], TensorRTOptions(), {})

    assert profile["images"] == ProfileShapes((1, 3, 224, 224), (128, 3, 224, 224), (128, 3, 224, 224))


def test_profile_honours_explicit_opt_and_max_batch() -> None:
    options = TensorRTOptions(opt_batch_size=16, max_batch_size=256)

    profile = optimization_profile(IMAGE, [1, 32], options, {})

    assert profile["images"].optimum == (16, 3, 224, 224)
    assert profile["images"].maximum == (256, 3, 224, 224)


def test_dynamic_sequence_length_is_fixed_from_the_example_data() -> None:
    tokens = [TensorSpec(name="input_ids", shape=[-1, -1], dtype="int64")]
    example = {"input_ids": np.zeros((2, 128), np.int64)}

    profile = optimization_profile(tokens, [1, 8], TensorRTOptions(), example)

    assert profile["input_ids"] == ProfileShapes((1, 128), (8, 128), (8, 128))


def test_fixed_batch_dimension_gives_a_fixed_profile() -> None:
    fixed = [TensorSpec(name="x", shape=[4, 10])]

    assert optimization_profile(fixed, [1, 8], TensorRTOptions(), {})["x"] == ProfileShapes((4, 10), (4, 10), (4, 10))


def test_opt_batch_above_max_batch_is_invalid() -> None:
    with pytest.raises(InvalidSpec, match=r"optBatchSize 64 is larger than tensorrt.maxBatchSize 32"):
        optimization_profile(IMAGE, [1], TensorRTOptions(opt_batch_size=64, max_batch_size=32), {})


def test_networks_are_strongly_typed_with_precision_from_the_onnx_file() -> None:
    settings = builder_settings(TensorRTOptions(builder_optimization_level=5), Precision.INT8)

    assert settings["networkFlags"] == ["STRONGLY_TYPED"]
    assert settings["precisionSource"] == "Q/DQ ONNX (explicit quantization)"
    assert settings["builderOptimizationLevel"] == 5


def test_quantizer_prefers_modelopt_when_installed() -> None:
    assert choose_quantizer(TensorRTOptions(), True, CalibrationMethod.ENTROPY) is Tool.MODELOPT
    assert choose_quantizer(TensorRTOptions(), False, CalibrationMethod.ENTROPY) is Tool.ONNXRUNTIME


def test_auto_quantizer_takes_onnxruntime_for_percentile_which_modelopt_lacks() -> None:
    assert choose_quantizer(TensorRTOptions(), True, CalibrationMethod.PERCENTILE) is Tool.ONNXRUNTIME


def test_asking_for_modelopt_without_it_is_invalid() -> None:
    with pytest.raises(InvalidSpec, match="modelopt is not installed"):
        choose_quantizer(TensorRTOptions(quantizer="modelopt"), False, CalibrationMethod.ENTROPY)


def test_asking_modelopt_for_percentile_is_invalid_instead_of_quietly_entropy() -> None:
    with pytest.raises(InvalidSpec, match=r"tensorrt.quantizer: modelopt has no percentile calibration"):
        choose_quantizer(TensorRTOptions(quantizer="modelopt"), True, CalibrationMethod.PERCENTILE)



# -- the Q/DQ model TensorRT parses, and what became of the timing cache ------------------------

def _int8_qdq_for_tensorrt(digits: dict[str, Path], tmp_path: Path) -> Any:
    """The Q/DQ model the TensorRT backend writes for an int8 target (ONNX Runtime's quantizer)."""
    onnx = pytest.importorskip("onnx")
    resource = parse_resource(digits_resource(
        digits["onnx"], "onnx", tmp_path / "out", [{"name": "trt-int8", "backend": "tensorrt", "precision": "int8"}],
        calibration={"uri": str(digits["calibration"]), "samples": 64, "batchSize": 32, "method": "minmax"},
        resources={"gpu": 1}))
    spec = resource.spec
    data = load_dataset(digits["calibration"], spec.model.inputs, spec.preprocessing, CalibrationDataInvalid,
                        "calibration.uri")
    source = SourceModel(spec.model, digits["onnx"], tmp_path / "source", "cpu",
                         {k: v[:2] for k, v in data.batch_of(2).items()})
    (tmp_path / "artifact").mkdir()
    context = BuildContext(spec, spec.targets[0], source, "cpu", tmp_path, tmp_path / "artifact", data)
    model_path, _ = TensorRTBackend()._typed_onnx(context, TensorRTOptions(quantizer="onnxruntime"), Precision.INT8)
    return onnx.load(str(model_path))


def int32_bias_dequantizers(model: Any) -> list[str]:
    """DequantizeLinear nodes that turn an int32 initializer (a quantized bias) back into floats."""
    int32 = {init.name for init in model.graph.initializer if init.data_type == 6}  # TensorProto.INT32
    return [node.name for node in model.graph.node if node.op_type == "DequantizeLinear" and node.input[0] in int32]


def test_the_qdq_model_for_tensorrt_keeps_float_biases_and_no_int32_bias_dequantize(
        digits: dict[str, Path], tmp_path: Path) -> None:
    model = _int8_qdq_for_tensorrt(digits, tmp_path)

    initializers = {init.name: init for init in model.graph.initializer}
    biases = [node.input[2] for node in model.graph.node if node.op_type in ("Conv", "Gemm") and len(node.input) > 2]
    assert int32_bias_dequantizers(model) == []
    assert biases and all(initializers[b].data_type == 1 for b in biases if b in initializers)  # FLOAT
    assert sum(node.op_type == "QuantizeLinear" for node in model.graph.node) > 0


def test_onnx_runtimes_default_would_have_quantized_the_biases(digits: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: ORT's default (QuantizeBias true) writes int32 bias dequantizers."""
    monkeypatch.setattr(tensorrt, "QDQ_RECIPE", replace(tensorrt.QDQ_RECIPE, quantize_bias=True))

    assert int32_bias_dequantizers(_int8_qdq_for_tensorrt(digits, tmp_path)) != []


class CacheStandIn:
    """Stands in for ITimingCache: ``combine`` answers as TensorRT would for this cache's origin."""

    def __init__(self, same_version_and_device: bool) -> None:
        self.same = same_version_and_device
        self.combined: list[CacheStandIn] = []

    def combine(self, other: CacheStandIn, ignore_mismatch: bool) -> bool:
        if not other.same and not ignore_mismatch:
            return False
        self.combined.append(other)
        return True


class ConfigStandIn:
    """Stands in for IBuilderConfig's timing-cache calls."""

    def __init__(self, stored_matches: bool, unreadable: bool = False) -> None:
        self.stored_matches, self.unreadable = stored_matches, unreadable
        self.attached: tuple[CacheStandIn, bool] | None = None

    def create_timing_cache(self, data: bytes) -> CacheStandIn:
        if data and self.unreadable:
            raise RuntimeError("Invalid timing cache")
        return CacheStandIn(same_version_and_device=not data or self.stored_matches)

    def set_timing_cache(self, cache: CacheStandIn, ignore_mismatch: bool) -> bool:
        self.attached = (cache, ignore_mismatch)
        return True


@pytest.mark.parametrize(("previous", "matches", "unreadable", "outcome"), [
    (b"", True, False, TimingCache.NONE),
    (b"cache of this TensorRT on this card", True, False, TimingCache.ACCEPTED),
    (b"cache of another TensorRT or card", False, False, TimingCache.REJECTED),
    (b"not a timing cache", True, True, TimingCache.REJECTED),
], ids=["no previous cache", "accepted", "rejected by combine", "unreadable"])
def test_the_timing_cache_is_reported_as_tensorrt_took_it(previous: bytes, matches: bool, unreadable: bool,
                                                           outcome: TimingCache) -> None:
    config = ConfigStandIn(stored_matches=matches, unreadable=unreadable)

    assert attach_timing_cache(config, previous) is outcome
    assert config.attached is not None and config.attached[1] is False  # never ignore a mismatch
    assert bool(config.attached[0].combined) is (outcome is TimingCache.ACCEPTED)


def test_without_tensorrt_a_build_is_backend_unavailable_naming_the_image() -> None:
    with pytest.raises(BackendUnavailable, match="backend tensorrt is not available in this image"):
        TensorRTBackend().check_available("cuda")
