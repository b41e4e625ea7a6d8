"""The ONNX Runtime backend's runner: a session with I/O binding on a GPU, and the choice of
execution providers and optimization level it is built with. The baseline runs ONNX sources on a
CPU with it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kubeopt.worker.frameworks import require
from kubeopt.worker.runners import Feeds, Synchronous, WorkPlace

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
