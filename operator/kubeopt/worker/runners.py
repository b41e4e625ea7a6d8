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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kubeopt.worker.frameworks import require

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


def _flatten(value: Any, torch: Any) -> list[Any]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v, torch)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _flatten(v, torch)]
    return []


class TorchRunner:
    """A torch callable (eager, compiled or quantized) on one device and dtype."""

    def __init__(self, module: Any, input_names: list[str], device: str, dtype: Any = None,
                 channels_last: bool = False) -> None:
        self.torch = require("torch", "torch-compile")
        self.module = module
        self.input_names = input_names
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.on_cuda = device.startswith("cuda")

    def _tensors(self, feeds: Feeds) -> list[Any]:
        torch = self.torch
        tensors = []
        for name in self.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to(self.device)
            if self.dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(self.dtype)
            if self.channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            tensors.append(tensor)
        return tensors

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        with self.torch.inference_mode():
            outputs = self.module(*self._tensors(feeds))
        return [t.detach().float().cpu().numpy() for t in _flatten(outputs, self.torch)]

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        tensors = self._tensors(feeds)
        module, inference_mode = self.module, self.torch.inference_mode

        def step() -> object:
            with inference_mode():
                return module(*tensors)

        return step

    def synchronize(self) -> None:
        if self.on_cuda:
            self.torch.cuda.synchronize()

    def work_runs_on(self) -> WorkPlace:
        """torch launches on the device's current stream (compiled graphs and CUDA-graph
        replays included); on a CPU a call returns when its work is done."""
        if not self.on_cuda:
            return Synchronous()
        return OnStream(self.torch.cuda.current_stream(self.torch.device(self.device)))


ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
PROVIDER_PREFERENCE = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def choose_providers(requested: str, available: list[str], device: str) -> list[str]:
    """Return the provider list for a session: the requested one (with CPU fallback) or the best installed.

    Raises ValueError naming the installed providers when the requested one is missing.
    """
    if requested != "auto":
        if requested not in available:
            raise ValueError(f"execution provider {requested} is not installed; installed: {', '.join(available)}")
        return [requested] + (["CPUExecutionProvider"] if requested != "CPUExecutionProvider" else [])
    if device == "cpu":
        return ["CPUExecutionProvider"]
    chosen = [p for p in PROVIDER_PREFERENCE if p in available]
    return chosen or ["CPUExecutionProvider"]


class OrtRunner:
    """An ONNX Runtime session; outputs are cast to float32 for comparison."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.on_cuda = session.get_providers()[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        self.input_types = {i.name: i.type for i in session.get_inputs()}

    def _cast(self, feeds: Feeds) -> Feeds:
        cast = {}
        for name, array in feeds.items():
            kind = self.input_types.get(name, "")
            cast[name] = array.astype(np.float16) if kind == "tensor(float16)" else array
        return cast

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        outputs = self.session.run(None, self._cast(feeds))
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        feeds = self._cast(feeds)
        if not self.on_cuda:
            session = self.session
            return lambda: session.run(None, feeds)
        ort = require("onnxruntime", "onnxruntime")
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cuda")
        session = self.session
        return lambda: session.run_with_iobinding(binding)

    def synchronize(self) -> None:
        """Session runs return after the device finished; nothing to wait for."""

    def work_runs_on(self) -> WorkPlace:
        """A session run (with I/O binding too) returns once its outputs are ready, on every
        execution provider; ONNX Runtime's CUDA stream is its own, so no event could see it."""
        return Synchronous()
