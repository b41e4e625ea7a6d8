"""Lazy imports of ML frameworks: a missing one becomes BackendUnavailable, not an ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from kubeopt.api.backends import BACKENDS
from kubeopt.worker import quiet
from kubeopt.worker.errors import BackendUnavailable


def image_hints() -> dict[str, str]:
    """Which worker image has each framework: the converters' modules, then each backend's own
    (from its description; the first backend to name a module is the one whose image is named)."""
    hints = {
        "onnx": "a worker image with the onnx package (any kubeopt worker image)",
        "tf2onnx": "a worker image with tensorflow and tf2onnx (kubeopt-worker-tftrt)",
    }
    for backend in BACKENDS.values():
        for module in backend.frameworks:
            hints.setdefault(module, f"the {backend.name.value} worker image (kubeopt-{backend.image}, "
                                     f"{backend.image_has})")
    return hints


IMAGES = image_hints()


def require(module: str, backend: str) -> ModuleType:
    """Import ``module`` or raise BackendUnavailable naming the image that has it."""
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        raise BackendUnavailable(backend, top, IMAGES.get(top, "a worker image that has it")) from error
    quiet.tame_torch()  # torch (imported now, by this module or earlier) logs to the log file, not stderr
    return imported
