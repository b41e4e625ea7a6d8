"""Time a runner per batch size: warm-up, then per-iteration latency; CUDA events on a GPU.

The runner says where its step's work runs (``Runner.work_runs_on``). Work enqueued on a CUDA
stream is bracketed by CUDA events recorded *on that stream* and waited for, so host overhead
outside the model is not counted and asynchronous launches are not mistaken for finished
work. Events on another stream would time nothing: a runner with its own stream (TensorRT)
returns at once, and the current stream's events close before its work began. Synchronous
work (a CPU, ONNX Runtime, TensorFlow) is timed with ``perf_counter`` around the step and the
runner's ``synchronize``.

A timing also says whether it can be trusted (``BatchTiming.stability``). The rule, with the
thresholds below: a measurement is *unstable* when its tail is wide (p99 / p50 above
``MAX_TAIL_RATIO``) or when it drifted while it ran (the timed iterations, in the order they
ran, are cut into ``SLICES`` consecutive slices; the slices' medians differ by more than
``MAX_MEDIAN_SPREAD`` of the overall median). The slices repeat the median at no extra cost:
a machine that got busy halfway, a clock that changed, or a cache that warmed late shows up as
medians that disagree, which one p50 over all iterations hides. A speedup made from an
unstable timing (the target's or the baseline's) is marked, not printed bare.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeopt.api.spec import Benchmark
from kubeopt.worker.data import Dataset
from kubeopt.worker.runners import OnStream, Runner

Step = Callable[[], object]
Timer = Callable[[Step], float]


MAX_TAIL_RATIO = 2.0  # p99 / p50 above this: the tail is too wide for one number to stand for it
MAX_MEDIAN_SPREAD = 0.10  # (max - min) of the slice medians over the overall median
SLICES = 5  # consecutive slices of the timed iterations whose medians are compared
MIN_PER_SLICE = 2  # fewer timed iterations than SLICES * this: no slice check (too few to tell)


@dataclass(frozen=True)
class Stability:
    """Whether a timing can be trusted, with the figures the rule was applied to."""

    tail_ratio: float  # p99 / p50
    slice_medians_ms: tuple[float, ...]  # empty when there were too few iterations to slice
    median_spread: float | None  # (max - min) of slice_medians_ms / p50
    reasons: tuple[str, ...]  # why it is unstable; empty when stable

    @property
    def stable(self) -> bool:
        return not self.reasons


def stability_of(latencies_ms: tuple[float, ...]) -> Stability:
    """Apply the rule in this module's docstring to latencies in the order they were measured."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50 = float(np.percentile(values, 50))
    p99 = float(np.percentile(values, 99))
    tail = p99 / p50 if p50 > 0 else float("inf")
    reasons = []
    if tail > MAX_TAIL_RATIO:
        reasons.append(f"p99/p50 {tail:.3g} > {MAX_TAIL_RATIO:g}")
    medians: tuple[float, ...] = ()
    spread = None
    if len(values) >= SLICES * MIN_PER_SLICE:
        medians = tuple(float(np.median(part)) for part in np.array_split(values, SLICES))
        spread = (max(medians) - min(medians)) / p50 if p50 > 0 else float("inf")
        if spread > MAX_MEDIAN_SPREAD:
            reasons.append(f"medians of {SLICES} slices {spread:.0%} apart > {MAX_MEDIAN_SPREAD:.0%}")
    return Stability(tail, medians, spread, tuple(reasons))


@dataclass(frozen=True)
class BatchTiming:
    batch_size: int
    iterations: int
    latencies_ms: tuple[float, ...]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p90_ms(self) -> float:
        return self.percentile(90)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def stability(self) -> Stability:
        return stability_of(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch_size / (self.p50_ms / 1000.0)


def _timing_event() -> Any:
    import torch

    return torch.cuda.Event(enable_timing=True)


def stream_timer(stream: Any, make_event: Callable[[], Any] | None = None) -> Timer:
    """A timer of work enqueued on ``stream``: milliseconds between two CUDA events recorded on
    that stream around the step, after the end event completed. ``make_event`` defaults to a
    timing ``torch.cuda.Event`` (a parameter so the recording logic is testable without CUDA)."""
    event = make_event or _timing_event
    start, end = event(), event()

    def timed(step: Step) -> float:
        start.record(stream)
        step()
        end.record(stream)
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def wall_timer(synchronize: Callable[[], None]) -> Timer:
    """A timer of synchronous work: wall-clock milliseconds of the step and ``synchronize``."""
    def timed(step: Step) -> float:
        began = time.perf_counter()
        step()
        synchronize()
        return (time.perf_counter() - began) * 1000.0

    return timed


def timer_for(runner: Runner, make_event: Callable[[], Any] | None = None) -> Timer:
    """The timer that waits for ``runner``'s work where it runs."""
    place = runner.work_runs_on()
    if isinstance(place, OnStream):
        return stream_timer(place.stream, make_event)
    return wall_timer(runner.synchronize)


def time_batch(runner: Runner, data: Dataset, batch_size: int, settings: Benchmark) -> BatchTiming:
    step = runner.prepare(data.batch_of(batch_size))
    for _ in range(settings.warmup):
        step()
    runner.synchronize()
    timed = timer_for(runner)
    latencies = tuple(timed(step) for _ in range(settings.iterations))
    return BatchTiming(batch_size, settings.iterations, latencies)


def time_runner(runner: Runner, data: Dataset, settings: Benchmark) -> dict[int, BatchTiming]:
    """Time every batch size of the benchmark settings."""
    return {b: time_batch(runner, data, b, settings) for b in settings.batch_sizes}
