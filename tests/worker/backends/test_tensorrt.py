from __future__ import annotations

import numpy as np
import pytest

from kubeopt.api.spec import CalibrationMethod, Precision, TensorRTOptions, TensorSpec
from kubeopt.worker.backends.tensorrt import (
    ProfileShapes,
    builder_settings,
    choose_quantizer,
    optimization_profile,
)
from kubeopt.worker.calibration_methods import Tool
from kubeopt.worker.errors import InvalidSpec

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
