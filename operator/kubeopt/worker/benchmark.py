"""Time a runner per batch size: warm-up, then per-iteration latency; CUDA events on a GPU.

On a GPU each iteration is bracketed by CUDA events recorded on the current stream after a
synchronize, so host overhead outside the model is not counted and asynchronous launches are
not mistaken for finished work. On a CPU, ``perf_counter`` around a call that returns only
when the work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kubeopt.api.spec import Benchmark
from kubeopt.worker.data import Dataset
from kubeopt.worker.runners import Runner


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
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch_size / (self.p50_ms / 1000.0)


def _cuda_timer(runner: Runner) -> Callable[[Callable[[], object]], float]:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(step: Callable[[], object]) -> float:
        start.record()
        step()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def _cpu_timer(runner: Runner) -> Callable[[Callable[[], object]], float]:
    def timed(step: Callable[[], object]) -> float:
        began = time.perf_counter()
        step()
        runner.synchronize()
        return (time.perf_counter() - began) * 1000.0

    return timed


def time_batch(runner: Runner, data: Dataset, batch_size: int, settings: Benchmark) -> BatchTiming:
    step = runner.prepare(data.batch_of(batch_size))
    for _ in range(settings.warmup):
        step()
    runner.synchronize()
    timed = _cuda_timer(runner) if runner.on_cuda else _cpu_timer(runner)
    latencies = tuple(timed(step) for _ in range(settings.iterations))
    return BatchTiming(batch_size, settings.iterations, latencies)


def time_runner(runner: Runner, data: Dataset, settings: Benchmark) -> dict[int, BatchTiming]:
    """Time every batch size of the benchmark settings."""
    return {b: time_batch(runner, data, b, settings) for b in settings.batch_sizes}
