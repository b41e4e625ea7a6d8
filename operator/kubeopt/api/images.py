"""kubeopt's published image references, read from ``images.env`` beside this module.

That file is the one place image names and tags are written: the Makefile includes it to tag what
``make images`` builds, the operator takes its default worker images from here, and a test holds
the chart's values to it. Which image serves a backend is decided here too (the CPU worker is the
fallback: it is the one that runs anywhere).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from kubeopt.api.backends import BACKENDS, BackendName

__all__ = ["backend_images", "default_worker_image", "image", "image_settings", "operator_image"]

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
    """The worker image of every backend: the image its description names (api/backends.py), at
    images.env's registry and version; a description naming an image images.env lacks is an error."""
    settings = image_settings()
    published = {value for key, value in settings.items() if key.startswith("IMAGE_WORKER_")}
    images: dict[BackendName, str] = {}
    for name, description in BACKENDS.items():
        if description.image not in published:
            raise ValueError(f"backend {name.value}: image {description.image!r} is not in kubeopt/api/images.env")
        images[name] = f"{settings['KUBEOPT_REGISTRY']}/{description.image}:{settings['KUBEOPT_VERSION']}"
    return images
