"""The TF-TRT backend's runner: a TensorFlow signature or Keras model, synchronized through
TensorFlow. The baseline runs Keras and SavedModel sources with it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kubeopt.worker.runners import Feeds, Synchronous, WorkPlace


def _as_list(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return list(outputs)
    return [outputs]


class TfRunner:
    """A TensorFlow signature (called with keyword feeds) or a Keras model (called with a list);
    TensorFlow places it on the GPU when one is visible.

    TensorFlow (and TF-TRT's engines inside its graph) enqueue GPU work on streams of their own
    that torch cannot see, and a call may return before its kernels ran: the runner is
    synchronous, and ``synchronize`` waits through TensorFlow (``tf.test.experimental.sync_devices``,
    TensorFlow >= 2.12) for every op on every device to finish.
    """

    def __init__(self, tf: Any, function: Any, keras_inputs: list[str] | None = None) -> None:
        self.tf = tf
        self.function = function
        self.keras_inputs = keras_inputs
        self.on_cuda = bool(tf.config.list_physical_devices("GPU"))

    def _call(self, tensors: dict[str, Any]) -> Any:
        if self.keras_inputs is None:
            return self.function(**tensors)
        ordered = [tensors[name] for name in self.keras_inputs]
        return self.function(ordered[0] if len(ordered) == 1 else ordered, training=False)

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        outputs = self._call({k: self.tf.constant(v) for k, v in feeds.items()})
        return [np.asarray(o, dtype=np.float32) for o in _as_list(outputs)]

    def prepare(self, feeds: Feeds) -> Callable[[], object]:
        tensors = {k: self.tf.constant(v) for k, v in feeds.items()}
        return lambda: self._call(tensors)

    def synchronize(self) -> None:
        if self.on_cuda:
            self.tf.test.experimental.sync_devices()

    def work_runs_on(self) -> WorkPlace:
        return Synchronous()
