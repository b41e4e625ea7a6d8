"""Runners: one interface to run a model for validation and to step it for timing.

``run`` takes and returns numpy arrays (validation); ``prepare`` moves one batch to the
device once and returns a step function that does no host copies (benchmark), so timing
measures the model and not the transfers.

A runner also says *where its step's work runs* (``work_runs_on``): either ``OnStream`` (the
step enqueues CUDA work on that stream and returns before it ran) or ``Synchronous`` (the
work is done once the step and ``synchronize`` returned). The timer records its CUDA events
on exactly that stream: events on any other stream (the current one, say) would time the
enqueueing and not the work, which is how a runner with its own stream (TensorRT's) once
timed 0.048 ms for 21 ms of real work.

The runners themselves live with their backends (``backends/<name>/runner.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class OnStream:
    """The step enqueues its work on this CUDA stream (a ``torch.cuda.Stream``) and returns
    before the work ran: time it with CUDA events recorded on this stream."""

    stream: Any


@dataclass(frozen=True)
class Synchronous:
    """The step's work is done once the step and the runner's ``synchronize`` returned (a CPU,
    an ONNX Runtime session run, TensorFlow waiting on its devices): time it with a wall clock."""


WorkPlace = OnStream | Synchronous


class Runner(Protocol):
    def run(self, feeds: Feeds) -> list[np.ndarray]: ...

    def prepare(self, feeds: Feeds) -> Callable[[], object]: ...

    def synchronize(self) -> None: ...

    def work_runs_on(self) -> WorkPlace:
        """Where the work of ``prepare``'s step runs, so the timer can wait for it there."""
        ...
