"""The timer waits for a runner's work where the runner says it runs (no CUDA needed here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from kubeopt.worker.backends.tensorrt.runner import TensorRTRunner
from kubeopt.worker.backends.tf_trt.runner import TfRunner
from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.benchmark import timer_for
from kubeopt.worker.runners import Feeds, OnStream, Synchronous, WorkPlace


class RecordingEvent:
    """Stands in for a timing CUDA event: remembers the stream each record() named."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.stamp = 0.0

    def record(self, stream: Any = None) -> None:
        self.log.append(("record", stream))
        self.stamp = time.perf_counter()

    def synchronize(self) -> None:
        self.log.append(("synchronize", None))

    def elapsed_time(self, end: RecordingEvent) -> float:
        return (end.stamp - self.stamp) * 1000.0


class SideStreamRunner:
    """A runner that enqueues its work on a stream of its own, as TensorRT's runner does."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.steps = 0

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return []

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        def step() -> object:
            self.steps += 1
            return None
        return step

    def synchronize(self) -> None:
        """Nothing enqueued here."""

    def work_runs_on(self) -> WorkPlace:
        return OnStream(self.stream)


class SlowToFinishRunner(SideStreamRunner):
    """A synchronous runner whose work is done only when synchronize returns."""

    def synchronize(self) -> None:
        time.sleep(0.02)

    def work_runs_on(self) -> WorkPlace:
        return Synchronous()


def test_the_timer_records_both_events_on_the_stream_the_runner_names() -> None:
    log: list[tuple[str, Any]] = []
    side = object()
    runner = SideStreamRunner(side)

    timed = timer_for(runner, make_event=lambda: RecordingEvent(log))
    timed(runner.prepare({}))

    assert [entry for entry in log if entry[0] == "record"] == [("record", side), ("record", side)]
    assert log[-1] == ("synchronize", None)
    assert runner.steps == 1


def test_a_synchronous_runner_is_timed_by_the_wall_clock_until_its_synchronize_returns() -> None:
    runner = SlowToFinishRunner(stream=None)

    milliseconds = timer_for(runner, make_event=lambda: pytest.fail("no CUDA event for synchronous work"))(
        runner.prepare({}))

    assert milliseconds >= 19.0


def test_a_torch_runner_on_the_cpu_is_synchronous() -> None:
    import torch

    runner = TorchRunner(torch.nn.Linear(4, 2), ["x"], "cpu")

    assert runner.work_runs_on() == Synchronous()


def test_the_tensorrt_runner_names_its_own_stream() -> None:
    runner = TensorRTRunner.__new__(TensorRTRunner)  # the engine needs TensorRT; the stream is what matters
    runner.stream = stream = object()

    assert runner.work_runs_on() == OnStream(stream)


def test_a_tensorflow_runner_is_synchronous_and_synchronizes_through_tensorflow() -> None:
    tf = pytest.importorskip("tensorflow")
    runner = TfRunner(tf, lambda **feeds: feeds["x"] * 2)

    assert runner.work_runs_on() == Synchronous()
    runner.synchronize()  # on this CPU a no-op; on a GPU tf.test.experimental.sync_devices
    assert callable(tf.test.experimental.sync_devices)
