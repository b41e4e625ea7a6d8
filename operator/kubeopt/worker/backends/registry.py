"""Backends registered by name; a duplicate name is a programming error.

Every name has its description in ``kubeopt.api.backends``; ``check_precision`` reads it for
the device this run resolved to (a local run may land on a CPU although the spec asks for a GPU).
"""

from __future__ import annotations

from kubeopt.api.backends import DeviceKind, describe
from kubeopt.api.spec import BackendName, Target
from kubeopt.worker.backends.base import Backend
from kubeopt.worker.errors import InvalidSpec


class BackendRegistry:
    def __init__(self) -> None:
        self._backends: dict[BackendName, Backend] = {}

    def register(self, backend: Backend) -> None:
        if backend.name in self._backends:
            raise ValueError(f"backend {backend.name.value} is already registered")
        self._backends[backend.name] = backend

    def get(self, name: BackendName) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            known = ", ".join(sorted(b.value for b in self._backends))
            raise KeyError(f"no backend {name.value!r}; registered: {known}") from None

    def names(self) -> list[BackendName]:
        return sorted(self._backends)


def check_precision(target: Target, device: str) -> None:
    """Raise InvalidSpec when the target's backend does not build its precision on ``device``."""
    kind = DeviceKind.GPU if device.startswith("cuda") else DeviceKind.CPU
    backend = describe(target.backend)
    if target.precision in backend.precisions(kind):
        return
    raise InvalidSpec(f"target {target.name}: backend {target.backend.value} builds {backend.supported_text(kind)} "
                      f"on a {kind.value.upper()} (this run's device: {device}), not {target.precision.value}")


def default_registry() -> BackendRegistry:
    """Every built-in backend. Importing them imports no ML framework."""
    from kubeopt.worker.backends.onnxruntime.backend import OnnxRuntimeBackend
    from kubeopt.worker.backends.tensorrt.backend import TensorRTBackend
    from kubeopt.worker.backends.tf_trt.backend import TfTrtBackend
    from kubeopt.worker.backends.torch_compile.backend import TorchCompileBackend

    registry = BackendRegistry()
    for backend in (OnnxRuntimeBackend(), TorchCompileBackend(), TensorRTBackend(), TfTrtBackend()):
        registry.register(backend)
    return registry
