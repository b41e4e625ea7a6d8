from __future__ import annotations

import pytest

from kubeopt.api.spec import Precision, TfTrtOptions
from kubeopt.worker.backends.tf_trt.backend import (
    build_batch_sizes,
    check_tensorflow_version,
    conversion_params,
    converter_kwargs,
)
from kubeopt.worker.errors import BackendUnavailable, InvalidSpec


def test_lecture_parameters_map_onto_trt_conversion_params() -> None:
    options = TfTrtOptions(minimum_segment_size=5, max_workspace_size_bytes=1 << 31)

    params = conversion_params(options, Precision.FP16)

    assert params["precision_mode"] == "FP16"
    assert params["minimum_segment_size"] == 5
    assert params["max_workspace_size_bytes"] == 1 << 31
    assert params["use_calibration"] is False


def test_minimum_segment_size_defaults_to_three() -> None:
    assert conversion_params(TfTrtOptions(), Precision.FP32)["minimum_segment_size"] == 3


def test_int8_turns_on_calibration() -> None:
    assert conversion_params(TfTrtOptions(), Precision.INT8)["use_calibration"] is True


def test_static_engines_are_built_ahead_and_never_at_run_time() -> None:
    options = TfTrtOptions(is_dynamic_op=False, max_batch_size=16)

    assert conversion_params(options, Precision.FP16)["allow_build_at_runtime"] is False
    assert converter_kwargs(options)["use_dynamic_shape"] is False
    assert build_batch_sizes(options, [1, 8, 32, 64]) == [1, 8, 16]


def test_dynamic_op_keeps_run_time_engines_with_shape_profiles() -> None:
    options = TfTrtOptions(is_dynamic_op=True)

    assert conversion_params(options, Precision.FP32)["allow_build_at_runtime"] is True
    assert converter_kwargs(options) == {"use_dynamic_shape": True, "dynamic_shape_profile_strategy": "Range"}


def test_bf16_is_not_a_tf_trt_precision() -> None:
    with pytest.raises(InvalidSpec, match="bf16 is not supported"):
        conversion_params(TfTrtOptions(), Precision.BF16)


def test_tensorflow_after_2_17_has_no_tf_trt() -> None:
    check_tensorflow_version("2.17.1")
    with pytest.raises(BackendUnavailable, match=r"2.17 is the last with it"):
        check_tensorflow_version("2.18.0")
