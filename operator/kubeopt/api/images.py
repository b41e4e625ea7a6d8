"""kubeopt's published image references, read from ``images.env`` beside this module.

That file is the one place image names and tags are written: the Makefile includes it to tag what
``make images`` builds, the operator takes its default worker images from here, and a test holds
the chart's values to it. Which image serves a backend is decided here too (the CPU worker is the
fallback: it is the one that runs anywhere).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from kubeopt.api.spec import BackendName

__all__ = ["backend_images", "default_worker_image", "image", "image_settings", "operator_image"]

#: The images.env key of the image that serves each backend.
BACKEND_IMAGE_KEYS = {
    BackendName.TENSORRT: "IMAGE_WORKER_TENSORRT",
    BackendName.TF_TRT: "IMAGE_WORKER_TFTRT",
    BackendName.ONNXRUNTIME: "IMAGE_WORKER_ONNXRUNTIME",
    BackendName.TORCH_COMPILE: "IMAGE_WORKER_TORCH",
}
DEFAULT_WORKER_KEY = "IMAGE_WORKER_ONNXRUNTIME"


@cache
def image_settings() -> dict[str, str]:
    """images.env as a mapping (comments and blank lines dropped)."""
    text = resources.files("kubeopt.api").joinpath("images.env").read_text(encoding="utf-8")
    settings: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not value or " " in line:
            raise ValueError(f"kubeopt/api/images.env line {number}: write KEY=VALUE without spaces, got {line!r}")
        settings[key] = value
    return settings


def image(key: str) -> str:
    """The full reference (registry/name:version) of the image named by images.env's ``key``."""
    settings = image_settings()
    return f"{settings['KUBEOPT_REGISTRY']}/{settings[key]}:{settings['KUBEOPT_VERSION']}"


def operator_image() -> str:
    return image("IMAGE_OPERATOR")


def default_worker_image() -> str:
    return image(DEFAULT_WORKER_KEY)


def backend_images() -> dict[BackendName, str]:
    """The worker image of every backend."""
    return {backend: image(key) for backend, key in BACKEND_IMAGE_KEYS.items()}
