"""The TensorRT backend's runner: a deserialized engine enqueued (enqueueV3) on a CUDA stream of
its own, with torch tensors as device buffers. Its TensorRT calls are in the table of ``backend.py``'s
docstring, with the TensorRT 10 and 11 documentation they were checked against."""

from __future__ import annotations

from typing import Any

import numpy as np

from kubeopt.api.spec import ModelOptimizationSpec
from kubeopt.worker.errors import BuildFailed
from kubeopt.worker.frameworks import require
from kubeopt.worker.runners import Feeds, OnStream, WorkPlace


class TensorRTRunner:
    """Runs a deserialized engine with torch tensors as device buffers (enqueueV3) on its own
    CUDA stream, which ``work_runs_on`` names so the timer records its events there."""

    def __init__(self, trt: Any, engine_bytes: bytes, spec: ModelOptimizationSpec) -> None:
        self.torch = require("torch", "tensorrt")
        self.trt = trt
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_bytes)
        if self.engine is None:  # the documented answer to a plan it cannot read (the logger says why)
            raise BuildFailed("tensorrt: the engine (model.plan) does not deserialize; see the TensorRT log")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.stream = self.torch.cuda.Stream()

    def _bind(self, feeds: Feeds) -> list[Any]:
        torch = self.torch
        for name in self.inputs:
            tensor = torch.from_numpy(feeds[name]).cuda().contiguous()
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
            setattr(self, f"_keep_{name}", tensor)  # keep the buffer alive while bound
        outputs = []
        for name in self.outputs:
            dtype = torch.from_numpy(np.zeros(0, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            tensor = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, tensor.data_ptr())
            outputs.append(tensor)
        # The buffers were filled on the current stream; the engine's stream waits for them.
        self.stream.wait_stream(torch.cuda.current_stream())
        return outputs

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        outputs = self._bind(feeds)
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return [t.float().cpu().numpy() for t in outputs]

    def prepare(self, feeds: Feeds) -> Any:
        self._bind(feeds)
        context, handle = self.context, self.stream.cuda_stream
        return lambda: context.execute_async_v3(handle)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def work_runs_on(self) -> WorkPlace:
        return OnStream(self.stream)
