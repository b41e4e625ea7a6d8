"""Which device to run on, and how the report names it and the libraries measured."""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform

from kubeopt.api.backends import BACKENDS

# Every backend's frameworks (from the descriptions), then numpy.
LIBRARIES = (*dict.fromkeys(module for backend in BACKENDS.values() for module in backend.frameworks), "numpy")


def resolve_device(requested: str, gpus: int) -> str:
    """auto: cuda when torch sees a GPU and the spec asks for one, else cpu."""
    if requested in ("cpu", "cuda"):
        return requested
    if gpus > 0 and importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return f"CPU: {_cpu_model()} ({os.cpu_count()} cores, {platform.machine()})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str]:
    """Versions of the ML libraries importable here (only those already imported or cheap to find)."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in LIBRARIES:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "installed"
    return versions
