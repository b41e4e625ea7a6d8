"""Calibration methods map to what each tool runs, with no fallback, and say what ran."""

from __future__ import annotations

import pytest

from kubeopt.api.backends import BackendName, CalibrationMethod
from kubeopt.api.spec import Calibration
from kubeopt.worker.calibration_methods import Tool, calibrator
from kubeopt.worker.errors import InvalidSpec


def settings(method: str | None = None, percentile: float = 99.9) -> Calibration:
    return Calibration(uri="c.npz", method=CalibrationMethod(method) if method else None, percentile=percentile)


def test_percentile_runs_onnxruntimes_percentile_and_records_the_value() -> None:
    used = calibrator(Tool.ONNXRUNTIME, BackendName.ONNXRUNTIME, settings("percentile", 99.99))

    assert (used.algorithm, used.percentile) == ("Percentile", 99.99)
    assert used.provenance() == {"method": "percentile", "algorithm": "Percentile", "percentile": 99.99}


def test_the_percentile_value_is_recorded_only_when_the_method_is_percentile() -> None:
    used = calibrator(Tool.ONNXRUNTIME, BackendName.ONNXRUNTIME, settings("minmax", 99.99))

    assert used.provenance() == {"method": "minmax", "algorithm": "MinMax"}


def test_percentile_never_becomes_entropy_in_modelopt() -> None:
    with pytest.raises(InvalidSpec, match=r"calibration.method: modelopt.onnx.quantization \(backend tensorrt\) has no "
                                          r"percentile calibration; it runs entropy, minmax"):
        calibrator(Tool.MODELOPT, BackendName.TENSORRT, settings("percentile"))


def test_entropy_never_becomes_a_histogram_observer_in_pt2e() -> None:
    with pytest.raises(InvalidSpec, match=r"has no entropy calibration; it runs histogram, minmax"):
        calibrator(Tool.PT2E_X86, BackendName.TORCH_COMPILE, settings("entropy"))


def test_an_unset_method_is_the_backends_default_and_is_recorded_as_such() -> None:
    assert calibrator(Tool.PT2E_X86, BackendName.TORCH_COMPILE, settings()).provenance() == {
        "method": "histogram", "algorithm": "HistogramObserver"}
    assert calibrator(Tool.TF_TRT, BackendName.TF_TRT, settings()).provenance() == {
        "method": "entropy", "algorithm": "IInt8EntropyCalibrator2"}
    assert calibrator(Tool.MODELOPT, BackendName.TENSORRT, settings("minmax")).algorithm == "max"
