"""SIGTERM and SIGINT end a real `kubeopt run` cleanly: a reason, no traceback, no workspace, nothing current."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import KUBEOPT, digits_resource


def tiny_classifier(path: Path) -> Path:
    """A linear classifier of 8x8 images: enough model to build, validate and benchmark."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], [((i * 7) % 13) / 13.0 for i in range(640)])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [10], [0.0] * 10)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"]), helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializer=[weight, bias])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def start(tmp_path: Path) -> subprocess.Popen[str]:
    """A run whose benchmark takes minutes, so that a signal lands in the middle of it."""
    resource = digits_resource(tiny_classifier(tmp_path / "tiny.onnx"), "onnx", tmp_path / "out",
                               [{"name": "ort", "backend": "onnxruntime"}])
    resource["spec"]["benchmark"] = {"batchSizes": [1], "warmup": 1, "iterations": 10_000_000}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(resource))
    return subprocess.Popen([*KUBEOPT, "run", str(tmp_path / "spec.yaml"), "--device", "cpu", "--workspace",
                             str(tmp_path / "workspace"), "--termination-log", str(tmp_path / "termination-log")],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)


def wait_for_line(process: subprocess.Popen[str], words: str, timeout: float = 240) -> str:
    assert process.stderr is not None
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"no {words!r} in the worker's output:\n{''.join(seen)}")


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_benchmark_ends_the_run_as_interrupted_and_leaves_nothing_behind(
        tmp_path: Path, sent: signal.Signals) -> None:
    process = start(tmp_path)
    before = wait_for_line(process, "baseline: timing")
    assert list((tmp_path / "workspace").iterdir()), "the run works inside --workspace"

    process.send_signal(sent)
    _, rest = process.communicate(timeout=120)

    output = before + rest
    assert process.returncode == EXIT_CODES[Reason.INTERRUPTED], output
    assert "Traceback" not in output
    assert f"kubeopt: Interrupted: {sent.name} stopped the run" in output
    message = json.loads((tmp_path / "termination-log").read_text())
    assert (message["status"], message["reason"]) == ("Failed", "Interrupted")
    assert [path.name for path in (tmp_path / "workspace").iterdir()] == ["kubeopt-run.log"]
    assert not list((tmp_path / "out").rglob("current.json"))
    assert not list((tmp_path / "out").rglob("manifest.json"))
    record = json.loads(next((tmp_path / "out" / "ort" / "runs").glob("*/run.json")).read_text())
    assert (record["status"], record["reason"]) == ("Failed", "Interrupted")
