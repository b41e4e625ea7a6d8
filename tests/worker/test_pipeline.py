"""The whole local pipeline on the digits CNN: real calibration, real accuracy, real artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

from kubeopt.api.summary import MAX_BYTES
from kubeopt.storage.manifest import verify
from kubeopt.storage.store import LocalStore
from kubeopt.storage.uri import parse_uri
from tests.conftest import current_run, digits_resource, run_kubeopt
from tests.worker.browser import measure_charts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(digits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("run")
    resource = digits_resource(
        digits["pt2"], "torch-export", tmp / "out",
        [{"name": "ort-fp32", "backend": "onnxruntime"},
         {"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"},
         {"name": "compile-int8", "backend": "torch-compile", "precision": "int8"},
         {"name": "compile-fp32", "backend": "torch-compile"}],
        calibration={"uri": str(digits["calibration"]), "samples": 256, "batchSize": 32, "method": "minmax"},
        validation={"uri": str(digits["validation"]), "budget": {"maxTop1Drop": 0.02, "maxRelativeError": 0.1}},
    )
    code, output, message = run_kubeopt(tmp, resource)
    return {"code": code, "output": output, "message": message, "out": tmp / "out", "tmp": tmp}


def test_local_run_succeeds_and_prints_the_table(run: dict[str, Any]) -> None:
    assert run["code"] == 0, run["output"]
    for heading in ("samples/s", "p50 ms", "p99 ms", "speedup", "top1 agree"):
        assert heading in run["output"]


def test_int8_onnx_artifact_really_holds_quantize_nodes(run: dict[str, Any]) -> None:
    model = onnx.load(str(current_run(run["out"], "ort-int8") / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}

    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_fp32_onnx_artifact_has_no_quantize_nodes(run: dict[str, Any]) -> None:
    model = onnx.load(str(current_run(run["out"], "ort-fp32") / "model.onnx"))

    assert "QuantizeLinear" not in {node.op_type for node in model.graph.node}


def test_int8_torch_target_was_calibrated_with_pt2e(run: dict[str, Any]) -> None:
    provenance = json.loads((current_run(run["out"], "compile-int8") / "calibration.json").read_text())

    assert provenance["quantizeOps"] > 0
    assert provenance["observer"] == "MinMaxObserver"
    assert provenance["samples"] == 256


def test_int8_accuracy_on_digits_stays_within_the_budget(run: dict[str, Any]) -> None:
    targets = {t["name"]: t for t in run["message"]["targets"]}

    for name in ("ort-int8", "compile-int8"):
        assert targets[name]["within_budget"] is True
        assert targets[name]["baseline_accuracy"] - targets[name]["accuracy"] <= 0.02
        assert targets[name]["accuracy"] > 0.9


def test_calibration_provenance_records_data_digest_samples_and_method(run: dict[str, Any]) -> None:
    provenance = json.loads((current_run(run["out"], "ort-int8") / "calibration.json").read_text())

    assert len(provenance["dataSha256"]) == 64
    assert provenance["samples"] == 256
    assert provenance["method"] == "minmax"
    assert provenance["quantizedNodes"]["QuantizeLinear"] > 0


def test_calibration_provenance_records_the_tool_and_the_algorithm_that_ran(run: dict[str, Any]) -> None:
    ort = json.loads((current_run(run["out"], "ort-int8") / "calibration.json").read_text())
    torch = json.loads((current_run(run["out"], "compile-int8") / "calibration.json").read_text())

    assert (ort["algorithm"], ort["tool"].split(" (")[0]) == ("MinMax", "onnxruntime.quantization.quantize_static")
    assert (torch["algorithm"], torch["tool"].split(" (")[0]) == ("MinMaxObserver", "torchao.pt2e X86InductorQuantizer")
    assert "percentile" not in ort and "percentile" not in torch


def test_every_published_artifact_verifies_against_its_manifest(run: dict[str, Any]) -> None:
    for target in ("ort-fp32", "ort-int8", "compile-int8"):
        entries = {e.path for e in verify(LocalStore(), parse_uri(str(current_run(run["out"], target))))}
        assert {"report.json", "report.html"} <= entries


def test_reports_name_the_device_and_draw_charts(run: dict[str, Any]) -> None:
    report = json.loads((current_run(run["out"], "_report") / "report.json").read_text())
    page = (current_run(run["out"], "_report") / "report.html").read_text()

    assert report["device"].startswith("CPU:")
    assert "onnxruntime" in report["versions"] and "torch" in report["versions"]
    assert page.count("<svg") == 3


def test_the_run_report_lays_out_in_chromium_with_every_chart_drawn_and_no_label_cut_off(
        run: dict[str, Any], tmp_path: Path) -> None:
    page = (current_run(run["out"], "_report") / "report.html").read_text()

    charts = measure_charts(page, tmp_path)

    assert [c["label"] for c in charts] == ["speedup over the baseline per batch size", "latency per batch size",
                                            "accuracy drop against the budget"]
    for chart in charts:
        assert chart["marks"] >= 4 and chart["clipped"] == [] and chart["overlapping"] == [], chart


def test_termination_message_is_compact_json_naming_the_best_target(run: dict[str, Any]) -> None:
    text = (run["tmp"] / "termination-log").read_text()

    assert len(text.encode()) <= MAX_BYTES
    assert run["message"]["status"] == "Succeeded"
    assert run["message"]["best"] in {"ort-fp32", "ort-int8", "compile-int8"}
    assert all(t["artifact"]["sha256"] for t in run["message"]["targets"])


def test_a_second_run_reuses_the_stored_compile_cache(digits: dict[str, Path], run: dict[str, Any]) -> None:
    resource = digits_resource(
        digits["pt2"], "torch-export", run["out"], [{"name": "compile-fp32", "backend": "torch-compile"}],
        validation={"uri": str(digits["validation"])})
    first_dir = run["tmp"] / "first"
    first_dir.mkdir()
    run_kubeopt(first_dir, resource)
    second_dir = run["tmp"] / "second"
    second_dir.mkdir()

    code, output, message = run_kubeopt(second_dir, resource)

    assert code == 0, output
    assert message is not None and message["targets"][0]["cache_hit"] is True


def test_triton_layout_publishes_a_model_repository(digits: dict[str, Path], tmp_path: Path) -> None:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "repo", [{"name": "ort", "backend": "onnxruntime"}],
                               validation={"uri": str(digits["validation"])})
    resource["spec"]["output"]["layout"] = "triton"

    code, output, _ = run_kubeopt(tmp_path, resource)

    assert code == 0, output
    config = (tmp_path / "repo" / "ort" / "ort" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 32" in config
    assert "version_policy: { specific: { versions: [1] } }" in config
    assert current_run(tmp_path / "repo", "ort") == tmp_path / "repo" / "ort" / "ort" / "1"
    assert (tmp_path / "repo" / "ort" / "ort" / "1" / "model.onnx").exists()


# Loads a published model the way a server would, in a process that imported nothing of kubeopt
# (only onnxruntime or torch, as the worker image has them), and runs it at each batch size given.
LOADER = """
import sys
import numpy as np
path, batches = sys.argv[1], [int(b) for b in sys.argv[2:]]
if path.endswith(".onnx"):
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    def run(x): return session.run(None, {"pixels": x})[0]
else:
    import torch
    import torch.ao.quantization.fx._decomposed  # core torch's quantized_decomposed ops, which int8 programs hold
    module = torch.export.load(path).module()
    def run(x): return module(torch.from_numpy(x)).detach().numpy()
for batch in batches:
    shape = run(np.random.default_rng(batch).random((batch, 1, 8, 8), dtype=np.float32)).shape
    assert shape == (batch, 10), (batch, shape)
print("served", batches)
"""


@pytest.mark.parametrize(("target", "file"), [("ort-fp32", "model.onnx"), ("ort-int8", "model.onnx"),
                                              ("compile-fp32", "model.pt2"), ("compile-int8", "model.pt2")])
def test_each_published_model_serves_batch_1_an_odd_batch_and_the_largest_in_a_fresh_process(
        run: dict[str, Any], target: str, file: str) -> None:
    path = current_run(run["out"], target) / file

    loaded = subprocess.run([sys.executable, "-c", LOADER, str(path), "1", "7", "32"], capture_output=True,
                            text=True, timeout=300)

    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "served [1, 7, 32]" in loaded.stdout


# Serves a published torch-compile artifact with the load.py published beside it, in a process
# that imported torch and nothing else (no kubeopt, no torch.ao): what the worker validated.
SERVER_WITH_LOAD_PY = """
import runpy
import sys
import numpy as np
import torch
folder, batches = sys.argv[1], [int(b) for b in sys.argv[2:]]
model, dtype = runpy.run_path(folder + "/load.py")["load"](folder, "cpu")
for batch in batches:
    pixels = torch.from_numpy(np.random.default_rng(batch).random((batch, 1, 8, 8), dtype=np.float32))
    shape = tuple(model(pixels if dtype is None else pixels.to(dtype)).shape)
    assert shape == (batch, 10), (batch, shape)
print("served", batches)
"""


@pytest.mark.parametrize("target", ["compile-fp32", "compile-int8"])
def test_a_published_pt2_loads_with_its_load_py_in_a_process_that_imported_only_torch(
        run: dict[str, Any], target: str) -> None:
    folder = current_run(run["out"], target)

    served = subprocess.run([sys.executable, "-c", SERVER_WITH_LOAD_PY, str(folder), "1", "7", "32"],
                            capture_output=True, text=True, timeout=600)

    assert served.returncode == 0, served.stderr[-3000:]
    assert "served [1, 7, 32]" in served.stdout
    recipe = json.loads((folder / "serve.json").read_text())
    assert recipe["file"] == "model.pt2"
    if target == "compile-int8":  # torch's quantized_decomposed ops, registered only on this import
        assert recipe["imports"] == ["torch.ao.quantization.fx._decomposed"]
        assert recipe["inductor"] == {"freezing": True}
