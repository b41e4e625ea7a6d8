"""Backends registered by name; a duplicate name is a programming error."""

from __future__ import annotations

from kubeopt.api.spec import BackendName
from kubeopt.worker.backends.base import Backend


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


def default_registry() -> BackendRegistry:
    """Every built-in backend. Importing them imports no ML framework."""
    from kubeopt.worker.backends.onnxruntime import OnnxRuntimeBackend
    from kubeopt.worker.backends.tensorrt import TensorRTBackend
    from kubeopt.worker.backends.tf_trt import TfTrtBackend
    from kubeopt.worker.backends.torch_compile import TorchCompileBackend

    registry = BackendRegistry()
    for backend in (OnnxRuntimeBackend(), TorchCompileBackend(), TensorRTBackend(), TfTrtBackend()):
        registry.register(backend)
    return registry
