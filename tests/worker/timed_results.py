"""Timings and real TargetResults for the report and table tests, without a model.

A schedule says how long each step of a runner takes: the same every step (stable), now and then
ten times longer (a wide tail), or longer from the middle of the run on (drift). ``time_schedule``
turns a schedule into the timings the benchmark would record on a perfectly quiet machine, so the
tests of the stability rule, the table and the report do not depend on how busy this machine is (a
steady 25 ms sleep measured 12% apart between slices at load 12). ``time_for_real`` runs a
``SleepRunner`` through ``benchmark.time_runner`` with its wall-clock timer, for the one test that
shows the rule on measured timings: a tail of ten-fold steps survives any scheduling noise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kubeopt.api.reasons import Reason
from kubeopt.api.spec import AccuracyBudget, Benchmark, Target, Task
from kubeopt.worker import benchmark, report, validate
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.data import Dataset
from kubeopt.worker.results import TargetResult
from kubeopt.worker.runners import Feeds, Synchronous, WorkPlace

Schedule = Callable[[int, int], float]  # (batch size, step index) -> seconds to sleep
DATA = Dataset({"x": np.zeros((4, 3), dtype=np.float32)}, None, "0" * 64, "test")
SETTINGS = Benchmark(batch_sizes=[1, 8], warmup=2, iterations=30)


class SleepRunner:
    """A synchronous runner whose step sleeps for ``schedule(batch size, step index)`` seconds."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return [np.zeros((len(next(iter(feeds.values()))), 10), dtype=np.float32)]

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        batch, steps = len(next(iter(feeds.values()))), [0]

        def step() -> object:
            time.sleep(self.schedule(batch, steps[0]))
            steps[0] += 1
            return None
        return step

    def synchronize(self) -> None:
        """Nothing runs after the step returned."""

    def work_runs_on(self) -> WorkPlace:
        return Synchronous()


def steady(ms: float, seed: int = 3) -> Schedule:
    """About the same duration every step (scaled a little with the batch size), within 2%."""
    rng = random.Random(seed)
    return lambda batch, _: ms * (1 + batch / 16) * rng.uniform(0.98, 1.02) / 1000


def spiky(ms: float, seed: int = 7) -> Schedule:
    """Ten times longer on a random tenth of the steps: a tail no single median stands for."""
    rng = random.Random(seed)
    return lambda batch, _: ms * (1 + batch / 16) * (10 if rng.random() < 0.1 else 1) / 1000


def drifting(ms: float) -> Schedule:
    """1.3 times slower from the 10th step on (as when another job starts meanwhile): narrow tail, moving median."""
    return lambda batch, index: ms * (1 + batch / 16) * (1.3 if index >= 10 else 1.0) / 1000


def time_schedule(schedule: Schedule, settings: Benchmark = SETTINGS) -> dict[int, BatchTiming]:
    """The timings of ``schedule``'s timed steps (after the warm-up ones), exactly."""
    return {batch: BatchTiming(batch, settings.iterations,
                               tuple(schedule(batch, settings.warmup + step) * 1000
                                     for step in range(settings.iterations)))
            for batch in settings.batch_sizes}


def time_for_real(schedule: Schedule, settings: Benchmark = SETTINGS) -> dict[int, BatchTiming]:
    """``schedule`` slept by a runner and timed by the benchmark as it times any runner."""
    return benchmark.time_runner(SleepRunner(schedule), DATA, settings)


def target(name: str, backend: str = "onnxruntime", precision: str = "fp32") -> Target:
    return Target.model_validate({"name": name, "backend": backend, "precision": precision})


def measured(name: str, timings: dict[int, BatchTiming], baseline: dict[int, BatchTiming], *,
             flip: int = 0, noise: float = 1e-7, budget: AccuracyBudget | None = None,
             precision: str = "fp32") -> TargetResult:
    """A target whose outputs differ from the baseline's by ``noise`` and whose top-1 differs on ``flip``
    of 200 samples (labelled), compared and judged by the real validate module."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 10))  # float64, so a noise of 1e-12 is still there to measure
    labels = base.argmax(axis=1)
    out = base + noise * rng.normal(size=base.shape) * np.abs(base).mean()
    for row in range(flip):
        out[row, (labels[row] + 1) % 10] = out[row].max() + 1.0
    accuracy = validate.compare([base], [out], labels, Task.CLASSIFICATION)
    verdict = validate.judge(accuracy, budget or AccuracyBudget())
    reason = Reason.SUCCEEDED if verdict.within_budget else Reason.ACCURACY_BUDGET_EXCEEDED
    return TargetResult(target(name, precision=precision), reason=reason, message="; ".join(verdict.reasons),
                        compile_seconds=1.234, accuracy=accuracy, verdict=verdict, timings=timings,
                        baseline_timings=baseline)


def report_of(results: list[TargetResult], budget: AccuracyBudget | None = None) -> dict[str, Any]:
    return report.build_report(results, name="timed", model={"uri": "model.onnx", "format": "onnx",
                                                             "task": "classification"},
                               baseline="ONNX Runtime CPU", device="CPU: test", versions={"numpy": np.__version__},
                               batch=8, objective="throughput", best=None, budget=budget or AccuracyBudget())
