"""Live progress: on a terminal one line with stage, target and elapsed time, redrawn in place;
not on a terminal, plain lines. The terminal case runs `kubeopt run` on a pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from kubeopt.worker.progress import CLEAR, LiveProgress
from tests.conftest import KUBEOPT, digits_resource, run_kubeopt


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_status_line_names_the_target_its_place_the_stage_and_both_clocks() -> None:
    clock, stream = Clock(), io.StringIO()
    live = LiveProgress(stream, ["ort-fp32", "compile-int8"], clock=clock, columns=lambda: 200)

    live("baseline: timing ONNX Runtime at batch sizes [1, 32]")
    clock.now += 61
    live("compile-int8: build torch-compile int8 (int8 calibration)")
    clock.now += 7

    assert live.status() == "[1:08] compile-int8 (2/2) · build 0:07 · build torch-compile int8 (int8 calibration)"


def test_a_target_moves_through_its_steps_and_its_outcome_stays_on_screen() -> None:
    clock, stream = Clock(), io.StringIO()
    live = LiveProgress(stream, ["ort-fp32"], clock=clock, columns=lambda: 200)

    steps = []
    for line in ("ort-fp32: build onnxruntime fp32", "ort-fp32: built in 0.4s; validating",
                 "ort-fp32: relative error 2.04e-07, top-1 agreement 1.0000; benchmarking",
                 "ort-fp32: published 5 files to file:///out/ort-fp32/runs/x (manifest.json, run.json, "
                 "then current.json)"):
        live(line)
        steps.append(live.stage)

    assert steps == ["build", "validate", "benchmark", "published"]
    assert f"{CLEAR}[0:00] ort-fp32: published 5 files" in stream.getvalue()
    assert stream.getvalue().count("\n") == 1  # only the outcome is a line of its own


def test_the_status_line_is_cut_to_the_terminal_width() -> None:
    live = LiveProgress(io.StringIO(), ["t"], clock=Clock(), columns=lambda: 40)

    live("t: relative error 2.04e-07, top-1 agreement 1.0000; benchmarking")

    assert len(live.status()) == 39 and live.status().endswith("…")


def test_the_clocks_move_while_a_stage_runs_without_news() -> None:
    stream = io.StringIO()
    with LiveProgress(stream, ["t"], interval=0.01) as live:
        live("t: build onnxruntime fp32")
        before = stream.getvalue().count(CLEAR)
        time.sleep(0.2)
        after = stream.getvalue().count(CLEAR)

    assert after - before >= 5
    assert stream.getvalue().endswith(CLEAR)  # the status line is erased for what follows


def _spec(tmp_path: Path, digits: dict[str, Path]) -> Path:
    resource = digits_resource(digits["onnx"], "onnx", tmp_path / "out",
                               [{"name": "ort-fp32", "backend": "onnxruntime"}],
                               validation={"uri": str(digits["validation"])})
    path = tmp_path / "optimization.yaml"
    path.write_text(yaml.safe_dump(resource))
    return path


def _run_on_a_terminal(spec: Path, cwd: Path) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen([*KUBEOPT, "run", str(spec), "--device", "cpu", "--termination-log",
                                str(cwd / "termination-log")], stdin=terminal, stdout=terminal, stderr=terminal,
                               cwd=cwd, env={**os.environ, "COLUMNS": "160"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every holder of the terminal closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=300), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_local_run_on_a_terminal_shows_stage_target_and_elapsed_in_place(
        digits: dict[str, Path], tmp_path: Path) -> None:
    code, screen = _run_on_a_terminal(_spec(tmp_path, digits), tmp_path)

    assert code == 0, screen
    frames = [frame for frame in screen.split(CLEAR) if frame]
    assert re.search(r"^\[\d+:\d\d\] ort-fp32 \(1/1\) · build \d+:\d\d", "\n".join(frames), re.M), screen
    assert any(" · benchmark " in frame for frame in frames)
    stages = r"^\[\d+:\d\d\] (load|baseline) \d+:\d\d · "  # the stages before the first target
    assert re.search(stages, "\n".join(frames), re.M), screen
    assert re.search(r"\[\d+:\d\d\] ort-fp32: published \d+ files", screen)
    assert "INFO kubeopt.worker: ort-fp32: build" not in screen  # no plain lines on a terminal
    assert "samples/s" in screen  # the table after the status line was erased


@pytest.mark.slow
def test_a_local_run_not_on_a_terminal_prints_plain_lines(digits: dict[str, Path], tmp_path: Path) -> None:
    resource = yaml.safe_load(_spec(tmp_path, digits).read_text())

    code, output, _ = run_kubeopt(tmp_path, resource)

    assert code == 0, output
    assert "\x1b[" not in output and "\r" not in output
    assert "INFO kubeopt.worker: ort-fp32: build onnxruntime fp32" in output
    assert "INFO kubeopt.worker: ort-fp32: published" in output
