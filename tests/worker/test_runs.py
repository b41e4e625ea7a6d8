"""Re-runs of a local optimization: each run its own location, the pointer only on good runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import current_run, digits_resource, run_kubeopt

pytestmark = pytest.mark.slow

INT8 = [{"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"}]


def spec(digits: dict[str, Path], out: Path, budget: dict[str, float], **output: Any) -> dict[str, Any]:
    resource = digits_resource(
        digits["onnx"], "onnx", out, INT8,
        calibration={"uri": str(digits["calibration"]), "samples": 64, "batchSize": 32, "method": "minmax"},
        validation={"uri": str(digits["validation"]), "samples": 128, "budget": budget})
    resource["spec"]["output"].update(output)
    resource["spec"]["benchmark"] = {"batchSizes": [1, 4], "warmup": 1, "iterations": 3}
    return resource


@pytest.fixture(scope="module")
def reruns(digits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A good run, then the same spec with a budget int8 cannot meet, then a good one with keepRuns 2."""
    tmp = tmp_path_factory.mktemp("reruns")
    out = tmp / "out"
    steps: dict[str, Any] = {"out": out}
    for name, budget, output in (("good", {"maxRelativeError": 0.5}, {}),
                                 ("tight", {"maxRelativeError": 1e-9}, {}),
                                 ("again", {"maxRelativeError": 0.5}, {"keepRuns": 2})):
        (tmp / name).mkdir()
        code, log, message = run_kubeopt(tmp / name, spec(digits, out, budget, **output))
        steps[name] = {"code": code, "log": log, "message": message,
                       "current": current_run(out, "ort-int8") if code == 0 else None}
        if name == "tight":
            steps[name]["current"] = current_run(out, "ort-int8")
    return steps


def run_folder(message: dict[str, Any]) -> Path:
    return Path(message["targets"][0]["run_uri"].removeprefix("file://"))


def test_a_run_publishes_into_its_own_run_folder_named_in_the_termination_message(reruns: dict[str, Any]) -> None:
    good = reruns["good"]

    assert good["code"] == 0, good["log"]
    target = good["message"]["targets"][0]
    assert target["artifact"]["uri"] == target["run_uri"]
    assert good["current"] == run_folder(good["message"])
    assert good["current"].parent == reruns["out"] / "ort-int8" / "runs"
    assert target["artifact"]["run_id"] == good["current"].name


def test_a_rerun_over_a_tighter_budget_leaves_the_pointer_on_the_last_good_run(reruns: dict[str, Any]) -> None:
    tight = reruns["tight"]

    assert tight["code"] == EXIT_CODES[Reason.ACCURACY_BUDGET_EXCEEDED], tight["log"]
    assert tight["current"] == reruns["good"]["current"]


def test_the_failed_run_is_visible_as_failed_and_holds_nothing_readable(reruns: dict[str, Any]) -> None:
    failed = run_folder(reruns["tight"]["message"])

    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "Failed" and record["reason"] == "AccuracyBudgetExceeded"
    assert [p.name for p in failed.iterdir()] == ["run.json"]


def test_the_next_good_run_moves_the_pointer_and_retention_drops_the_oldest(reruns: dict[str, Any]) -> None:
    again = reruns["again"]

    assert again["code"] == 0, again["log"]
    runs = sorted(p.name for p in (reruns["out"] / "ort-int8" / "runs").iterdir())
    assert runs == [run_folder(reruns["tight"]["message"]).name, again["current"].name]
    assert not reruns["good"]["current"].exists()


def test_every_run_report_is_kept_and_the_pointer_names_the_newest(reruns: dict[str, Any]) -> None:
    report = json.loads((current_run(reruns["out"], "_report") / "report.json").read_text())

    assert report["targets"][0]["run"]["id"] == reruns["again"]["current"].name
    assert report["targets"][0]["artifact"]["manifestSha256"] == reruns["again"]["message"]["targets"][0][
        "artifact"]["sha256"]


def test_changing_a_targets_backend_leaves_no_old_model_beside_the_new_one(
        digits: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    for backend in ("onnxruntime", "torch-compile"):
        (tmp_path / backend).mkdir()
        resource = digits_resource(digits["pt2"], "torch-export", out, [{"name": "t", "backend": backend}],
                                   validation={"uri": str(digits["validation"]), "samples": 64})
        resource["spec"]["benchmark"] = {"batchSizes": [2], "warmup": 1, "iterations": 2}
        code, log, _ = run_kubeopt(tmp_path / backend, resource)
        assert code == 0, log

    files = sorted(p.name for p in current_run(out, "t").iterdir())

    assert "model.pt2" in files and "model.onnx" not in files, files
