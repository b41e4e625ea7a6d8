"""Keras and SavedModel inputs: tf2onnx to ONNX Runtime, fp32 and int8, against TensorFlow's own run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

from tests.conftest import current_run, run_kubeopt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="the tensorflow extra is not installed"),
]


@pytest.fixture(scope="module")
def keras_digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small Keras CNN trained on digits, saved as .keras and SavedModel (built in its own process)."""
    folder = tmp_path_factory.mktemp("keras")
    subprocess.run([sys.executable, str(Path(__file__).with_name("make_keras_digits.py")), str(folder)],
                   check=True, capture_output=True, timeout=600)
    return {"keras": folder / "digits.keras", "saved_model": folder / "saved_model",
            "calibration": folder / "calibration.npz", "validation": folder / "validation.npz"}


def resource(model: Path, fmt: str, data: dict[str, Path], output: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "tf"},
        "spec": {
            "model": {"uri": str(model), "format": fmt, "task": "classification",
                      "inputs": [{"name": "pixels", "shape": [-1, 8, 8, 1]}]},
            "targets": [{"name": "ort-fp32", "backend": "onnxruntime"},
                        {"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"}],
            "calibration": {"uri": str(data["calibration"]), "samples": 256, "method": "minmax"},
            "validation": {"uri": str(data["validation"]), "budget": {"maxTop1Drop": 0.02, "maxRelativeError": 0.1}},
            "benchmark": {"batchSizes": [1, 32], "warmup": 2, "iterations": 10},
            "output": {"uri": str(output)},
            "resources": {"gpu": 0},
        },
    }


@pytest.mark.parametrize("fmt", ["keras", "tensorflow-savedmodel"])
def test_tensorflow_model_is_converted_calibrated_and_matches_tensorflow(
        fmt: str, keras_digits: dict[str, Path], tmp_path: Path) -> None:
    model = keras_digits["keras" if fmt == "keras" else "saved_model"]

    code, output, message = run_kubeopt(tmp_path, resource(model, fmt, keras_digits, tmp_path / "out"))

    assert code == 0, output
    assert message is not None
    targets = {t["name"]: t for t in message["targets"]}
    assert targets["ort-fp32"]["relative_error"] < 1e-5
    assert targets["ort-int8"]["within_budget"] is True
    assert targets["ort-int8"]["accuracy"] > 0.85
    int8 = onnx.load(str(current_run(tmp_path / "out", "ort-int8") / "model.onnx"))
    assert [i.name for i in int8.graph.input] == ["pixels"]
    assert "QuantizeLinear" in {n.op_type for n in int8.graph.node}


def test_tf_trt_on_tensorflow_without_tf_trt_names_the_image(keras_digits: dict[str, Path], tmp_path: Path) -> None:
    spec = resource(keras_digits["saved_model"], "tensorflow-savedmodel", keras_digits, tmp_path / "out")
    spec["spec"]["targets"] = [{"name": "tftrt", "backend": "tf-trt", "precision": "fp16"}]
    spec["spec"]["resources"] = {"gpu": 1}  # tf-trt needs a GPU; this run lands on the CPU

    code, _, message = run_kubeopt(tmp_path, spec)

    assert code == 16
    assert message is not None and "kubeopt-worker-tftrt" in message["targets"][0]["message"]
