"""A real `kubeopt run` keeps torch's warnings and the exporter's output off the terminal and in the log file.

torch is imported by the pipeline (never up front, which would abort TensorFlow runs:
tests/worker/test_tensorflow.py); its log handlers are taken off once it is.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import KUBEOPT, digits_resource

LIBRARY_LINE = re.compile(r"Warning|^[WEI]\d{4} ", re.MULTILINE)


def test_an_onnx_export_s_library_warnings_go_to_the_log_file_and_the_terminal_shows_progress_and_the_table(
        tmp_path: Path, digits: dict[str, Path]) -> None:
    resource = digits_resource(digits["pt2"], "torch-export", tmp_path / "out",
                               [{"name": "ort", "backend": "onnxruntime"},
                                {"name": "compile", "backend": "torch-compile"}])
    resource["spec"]["benchmark"] = {"batchSizes": [1], "warmup": 1, "iterations": 3}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(resource))

    done = subprocess.run([*KUBEOPT, "run", str(tmp_path / "spec.yaml"), "--device", "cpu",
                           "--termination-log", str(tmp_path / "termination-log")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)

    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal
    assert not LIBRARY_LINE.search(terminal), terminal
    log_file = tmp_path / "kubeopt-run.log"
    assert f"log: library messages and warnings go to {log_file}" in done.stderr
    logged = log_file.read_text()
    assert "UserWarning" in logged, "the exporter's training-mode warning is in the log file"
    assert "torch.onnx" in logged, "torch's own loggers write to the log file, not to stderr"
    assert "samples/s" in done.stdout and "\nort " in done.stdout and "\ncompile " in done.stdout, "the table"
