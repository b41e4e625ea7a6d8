"""On a GPU: a runner that works on a side stream fools a timer recording on the current stream,
and not the timer that records where the runner says its work runs.

Skipped without CUDA; run on the GPU machine (bench/timer_check.py has the figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from kubeopt.worker.benchmark import Timer, timer_for
from kubeopt.worker.runners import Feeds, OnStream, WorkPlace

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class SideStreamMatmuls:
    """Enqueues matrix products on a stream of its own and returns at once (TensorRT's pattern)."""

    def __init__(self, size: int = 4096, repeats: int = 20) -> None:
        self.stream = torch.cuda.Stream()
        self.a = torch.randn(size, size, device="cuda")
        self.repeats = repeats
        torch.cuda.synchronize()

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return []

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        def step() -> object:
            with torch.cuda.stream(self.stream):
                out = self.a
                for _ in range(self.repeats):
                    out = out @ self.a
            return out
        return step

    def synchronize(self) -> None:
        self.stream.synchronize()

    def work_runs_on(self) -> WorkPlace:
        return OnStream(self.stream)


def current_stream_timer() -> Timer:
    """The timer as it was: events recorded on the current stream, whatever the runner used."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(step: Callable[[], Any]) -> float:
        start.record()
        step()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def wall_clock_ms(runner: SideStreamMatmuls, step: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) * 1000.0


def median(timer: Callable[[Callable[[], object]], float], step: Callable[[], object], n: int = 10) -> float:
    torch.cuda.synchronize()
    return float(np.median([timer(step) for _ in range(n)]))


def test_a_side_stream_runner_fools_the_current_stream_timer_but_not_the_stream_timer() -> None:
    runner = SideStreamMatmuls()
    step = runner.prepare({})
    step()
    runner.synchronize()

    wall = float(np.median([wall_clock_ms(runner, step) for _ in range(10)]))
    old = median(current_stream_timer(), step)
    new = median(timer_for(runner), step)

    assert wall > 5.0  # real work: twenty 4096^3 products
    assert old < 0.2 * wall, f"current-stream timer {old:.3f} ms vs wall {wall:.3f} ms"
    assert 0.8 * wall <= new <= 1.05 * wall, f"stream timer {new:.3f} ms vs wall {wall:.3f} ms"


def test_a_torch_runner_on_the_gpu_names_the_current_stream() -> None:
    from kubeopt.worker.backends.torch_compile.runner import TorchRunner

    runner = TorchRunner(torch.nn.Linear(4, 2).cuda(), ["x"], "cuda")

    assert runner.work_runs_on() == OnStream(torch.cuda.current_stream())
