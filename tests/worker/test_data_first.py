"""Data is checked before any work, and a calibration problem fails only the targets that calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import current_run, digits_resource, run_kubeopt

pytestmark = pytest.mark.slow

FP32_AND_INT8 = [{"name": "ort", "backend": "onnxruntime"},
                 {"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"}]
FP32 = FP32_AND_INT8[:1]


def validation_copy(digits: dict[str, Path], path: Path, **change: Any) -> Path:
    """The digits validation data with some arrays replaced."""
    with np.load(digits["validation"]) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(change)
    np.savez(path, **arrays)
    return path


def by_name(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in message["targets"]}


def bad_calibration(kind: str, digits: dict[str, Path], path: Path) -> Path:
    if kind == "unreadable":
        path.write_text("pixels,1,2,3")
    elif kind == "misshapen":
        np.savez(path, pixels=np.zeros((8, 1, 28, 28), np.float32))
    else:
        pixels = np.load(digits["calibration"])["pixels"].copy()
        pixels[5, 0, 3, 3] = np.nan
        np.savez(path, pixels=pixels)
    return path


@pytest.mark.parametrize("validation", ["labelled", "none"])
@pytest.mark.parametrize("kind", ["unreadable", "misshapen", "non-finite"])
def test_bad_calibration_data_fails_only_the_int8_target_and_the_fp32_one_publishes(
        tmp_path: Path, digits: dict[str, Path], kind: str, validation: str) -> None:
    extra = {"validation": {"uri": str(digits["validation"])}} if validation == "labelled" else {}
    calibration = bad_calibration(kind, digits, tmp_path / "calib.npz")
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", FP32_AND_INT8,
                               calibration={"uri": str(calibration)}, **extra)

    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == 0, output
    assert message is not None
    targets = by_name(message)
    assert (targets["ort"]["phase"], targets["ort-int8"]["reason"]) == ("Succeeded", "CalibrationDataInvalid")
    assert "calibration.uri: calib.npz" in targets["ort-int8"]["message"]
    assert (current_run(tmp_path / "out", "ort") / "model.onnx").exists()
    assert not (tmp_path / "out" / "ort-int8" / "current.json").exists()
    assert "ort-int8 failed: CalibrationDataInvalid: calibration.uri: calib.npz" in output  # the table says why


def test_non_finite_calibration_values_name_the_file_key_and_first_bad_sample(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    calibration = bad_calibration("non-finite", digits, tmp_path / "calib.npz")
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", FP32_AND_INT8[1:],
                               calibration={"uri": str(calibration)}, validation={"uri": str(digits["validation"])})

    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == EXIT_CODES[Reason.CALIBRATION_DATA_INVALID], output
    assert message is not None
    assert ("calibration.uri: calib.npz, key 'pixels': sample 5 holds a non-finite value (NaN or infinity), "
            "1 samples in all") in message["message"]


def labels_case(case: str, digits: dict[str, Path]) -> tuple[dict[str, Any], str]:
    labels = np.load(digits["validation"])["labels"]
    if case == "count":
        return {"labels": labels[:3]}, f"3 labels (shape [3]) for {len(labels)} samples"
    if case == "dtype":
        return {"labels": labels.astype(np.float32)}, "dtype float32; labels are class indices"
    if case == "negative":
        changed = labels.copy()
        changed[7] = -1
        return {"labels": changed}, "sample 7 has label -1; class indices start at 0"
    changed = labels.copy()
    changed[4] = 12
    return {"labels": changed}, "sample 4 has label 12, but the model's output has 10 classes (labels 0..9)"


@pytest.mark.parametrize("case", ["count", "dtype", "negative", "range"])
def test_labels_that_are_not_class_indices_of_the_output_are_validation_data_invalid(
        tmp_path: Path, digits: dict[str, Path], case: str) -> None:
    change, words = labels_case(case, digits)
    validation = validation_copy(digits, tmp_path / "val.npz", **change)
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", FP32,
                               validation={"uri": str(validation)})

    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == EXIT_CODES[Reason.VALIDATION_DATA_INVALID], output
    assert message is not None and message["reason"] == "ValidationDataInvalid"
    assert "validation.uri: val.npz, key 'labels'" in message["message"]
    assert words in message["message"], message["message"]
    assert "baseline: timing" not in output  # found before any work


def test_non_finite_validation_values_are_validation_data_invalid(tmp_path: Path, digits: dict[str, Path]) -> None:
    pixels = np.load(digits["validation"])["pixels"].copy()
    pixels[11, 0, 0, 0] = np.inf
    validation = validation_copy(digits, tmp_path / "val.npz", pixels=pixels)
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out", FP32, validation={"uri": str(validation)})

    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == EXIT_CODES[Reason.VALIDATION_DATA_INVALID], output
    assert message is not None
    assert "validation.uri: val.npz, key 'pixels': sample 11 holds a non-finite value" in message["message"]


def test_a_classification_model_without_a_class_score_output_is_refused_naming_model_task(tmp_path: Path) -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [64, 1], [0.01] * 64)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["score"])],
        "regressor", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])], initializer=[weight])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
                    str(tmp_path / "regressor.onnx"))
    resource = digits_resource(tmp_path / "regressor.onnx", "onnx", tmp_path / "out", FP32)

    code, output, message = run_kubeopt(tmp_path, resource)

    assert code == EXIT_CODES[Reason.INVALID_SPEC], output
    assert message is not None
    assert "model.task: classification needs the model's first output to be class scores [batch, classes]; " \
           "it has shape [2, 1]; set model.task: generic" in message["message"]
