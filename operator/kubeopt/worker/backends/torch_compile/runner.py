"""The torch-compile backend's runner: any torch callable (eager, compiled, quantized) on one
device and dtype, on the device's current stream. The baseline runs torch sources with it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kubeopt.worker.frameworks import require
from kubeopt.worker.runners import Feeds, OnStream, Synchronous, WorkPlace


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
