"""Each bad input gets its typed error, a distinct exit code, a one-line reason, and nothing published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.helper as helper
import pytest

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import digits_resource, run_kubeopt

pytestmark = pytest.mark.slow

ORT_FP32 = [{"name": "ort", "backend": "onnxruntime"}]
ORT_INT8 = [{"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"}]


def assert_failed(tmp_path: Path, resource: dict[str, Any], reason: Reason, words: str) -> dict[str, Any]:
    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == EXIT_CODES[reason], output
    assert message is not None and message["reason"] == reason.value
    assert words in message["message"] or any(words in t.get("message", "") for t in message["targets"])
    assert f"kubeopt: {reason.value}: " in output
    published = [p for p in tmp_path.rglob("manifest.json") if "_report" not in p.parts]
    assert published == [], "a failed target must publish nothing"
    assert [p for p in tmp_path.rglob("current.json") if "_report" not in p.parts] == []
    return message


def test_missing_model_is_model_not_found(tmp_path: Path) -> None:
    resource = digits_resource(tmp_path / "absent.onnx", "onnx", tmp_path / "out", ORT_FP32)

    assert_failed(tmp_path, resource, Reason.MODEL_NOT_FOUND, "model.uri")


def test_corrupt_onnx_file_is_model_corrupt(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x00not a protobuf at all" * 10)
    resource = digits_resource(tmp_path / "broken.onnx", "onnx", tmp_path / "out", ORT_FP32)

    assert_failed(tmp_path, resource, Reason.MODEL_CORRUPT, "broken.onnx is not a valid ONNX model")


def test_corrupt_torch_export_file_is_model_corrupt(tmp_path: Path) -> None:
    (tmp_path / "broken.pt2").write_bytes(b"PK\x03\x04garbage")
    resource = digits_resource(tmp_path / "broken.pt2", "torch-export", tmp_path / "out", ORT_FP32)

    assert_failed(tmp_path, resource, Reason.MODEL_CORRUPT, "broken.pt2 is not a readable torch-export model")


def test_declared_shape_that_contradicts_the_onnx_model_is_input_shape_mismatch(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_FP32)
    resource["spec"]["model"]["inputs"][0]["shape"] = [-1, 3, 8, 8]

    assert_failed(tmp_path, resource, Reason.INPUT_SHAPE_MISMATCH, "model.inputs[0].shape")


def test_declared_input_name_missing_from_the_model_is_input_shape_mismatch(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_FP32)
    resource["spec"]["model"]["inputs"][0]["name"] = "image"
    np.savez(tmp_path / "val.npz", image=np.zeros((4, 1, 8, 8), np.float32))
    resource["spec"]["validation"] = {"uri": str(tmp_path / "val.npz")}

    assert_failed(tmp_path, resource, Reason.INPUT_SHAPE_MISMATCH, "'image' is not an input of the model")


def test_torch_model_rejecting_the_declared_shape_is_input_shape_mismatch(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["pt2"], "torch-export", tmp_path / "out", ORT_FP32)
    resource["spec"]["model"]["inputs"][0]["shape"] = [-1, 1, 9, 9]

    assert_failed(tmp_path, resource, Reason.INPUT_SHAPE_MISMATCH, "the model rejects inputs shaped")


def test_operator_no_runtime_implements_is_unsupported_op(tmp_path: Path) -> None:
    pixels = helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["batch", 1, 8, 8])
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 1, 8, 8])
    graph = helper.make_graph([helper.make_node("Frobnicate", ["pixels"], ["y"], domain="com.example")], "g",
                              [pixels], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "custom.onnx"))
    resource = digits_resource(tmp_path / "custom.onnx", "onnx", tmp_path / "out", ORT_FP32)

    assert_failed(tmp_path, resource, Reason.UNSUPPORTED_OP, "Frobnicate")


def test_calibration_file_that_is_not_npz_is_calibration_data_invalid(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    (tmp_path / "calib.npz").write_text("pixels,1,2,3")
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_INT8,
                               calibration={"uri": str(tmp_path / "calib.npz")})

    assert_failed(tmp_path, resource, Reason.CALIBRATION_DATA_INVALID, "calib.npz is not a readable .npz archive")


def test_calibration_data_without_the_input_key_is_calibration_data_invalid(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    np.savez(tmp_path / "calib.npz", images=np.zeros((8, 1, 8, 8), np.float32))
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_INT8,
                               calibration={"uri": str(tmp_path / "calib.npz")})

    assert_failed(tmp_path, resource, Reason.CALIBRATION_DATA_INVALID, "lacks input(s) pixels; it has images")


def test_calibration_data_of_the_wrong_shape_is_calibration_data_invalid(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    np.savez(tmp_path / "calib.npz", pixels=np.zeros((8, 1, 28, 28), np.float32))
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_INT8,
                               calibration={"uri": str(tmp_path / "calib.npz")})

    assert_failed(tmp_path, resource, Reason.CALIBRATION_DATA_INVALID, "sample shape [1, 28, 28]")


def test_tensorrt_without_tensorrt_installed_is_backend_unavailable_naming_the_image(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out",
                               [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}], resources={"gpu": 1})

    message = assert_failed(tmp_path, resource, Reason.BACKEND_UNAVAILABLE, "tensorrt is not installed")
    assert "kubeopt-worker-tensorrt" in message["targets"][0]["message"]


def test_tf_trt_of_an_onnx_model_is_invalid_spec_naming_the_format_it_reads(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", [{"name": "tftrt", "backend": "tf-trt"}],
                               resources={"gpu": 1})

    assert_failed(tmp_path, resource, Reason.INVALID_SPEC,
                  "spec.model.format: backend tf-trt (target tftrt) does not accept onnx; it accepts "
                  "tensorflow-savedmodel")


def test_torch_compile_of_an_onnx_model_is_invalid_spec(tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out",
                               [{"name": "tc", "backend": "torch-compile"}])

    assert_failed(tmp_path, resource, Reason.INVALID_SPEC,
                  "spec.model.format: backend torch-compile (target tc) does not accept onnx; it accepts torch-export")


def test_target_over_the_accuracy_budget_is_never_published(tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", ORT_INT8,
                               calibration={"uri": str(digits["calibration"]), "samples": 64},
                               validation={"uri": str(digits["validation"]),
                                           "budget": {"maxRelativeError": 0.0, "maxTop1Drop": 0.0}})

    message = assert_failed(tmp_path, resource, Reason.ACCURACY_BUDGET_EXCEEDED, "relative error")
    assert "best" not in message or message.get("best") is None


def test_bad_spec_names_the_field_and_exits_invalid_spec(tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", [{"name": "x", "backend": "onnxruntime",
                                                                          "precision": "fp64"}])

    assert_failed(tmp_path, resource, Reason.INVALID_SPEC, "spec.targets[0].precision")


def test_output_under_a_file_is_storage_misconfigured_and_not_retried(tmp_path: Path,
                                                                    digits: dict[str, Path]) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "file" / "out", ORT_FP32,
                               validation={"uri": str(digits["validation"])})

    assert_failed(tmp_path, resource, Reason.STORAGE_MISCONFIGURED, "check output.uri")


def test_fp8_target_that_lands_on_a_cpu_is_invalid_spec_naming_what_a_cpu_builds(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    targets = [{"name": "compile-fp8", "backend": "torch-compile", "precision": "fp8"}]
    resource = digits_resource(digits["pt2"], "torch-export", tmp_path / "out", targets, resources={"gpu": 1})

    assert_failed(tmp_path, resource, Reason.INVALID_SPEC, "target compile-fp8: backend torch-compile builds fp32, "
                  "fp16, bf16, int8 on a CPU (this run's device: cpu), not fp8")


def test_precision_the_backend_does_not_have_is_invalid_spec_naming_what_it_has(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    targets = [{"name": "ort-bf16", "backend": "onnxruntime", "precision": "bf16"}]
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", targets)

    assert_failed(tmp_path, resource, Reason.INVALID_SPEC,
                  "spec.targets[0] (ort-bf16).precision: backend onnxruntime does not build bf16 on a CPU")
