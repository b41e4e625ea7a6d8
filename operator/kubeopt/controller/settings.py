"""Operator settings: one frozen dataclass handed to the code that needs it.

Module globals here are only defaults; ``OperatorSettings.from_env`` reads the environment
once at start-up (the Helm chart sets it) and nothing else looks at ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeopt.api.images import backend_images, default_worker_image
from kubeopt.api.spec import BackendName, Images

# From kubeopt/api/images.env, like the chart's values and `make images`.
DEFAULT_WORKER_IMAGE = default_worker_image()
DEFAULT_METRICS_PORT = 8080
IMAGE_ENV_PREFIX = "KUBEOPT_WORKER_IMAGE"
# Jobs always run under this account, never one a spec names: it has no RBAC bindings and no
# token (``automountServiceAccountToken: false``), so a worker can reach nothing in the API.
DEFAULT_WORKER_SERVICE_ACCOUNT = "kubeopt-worker"
WORKER_SERVICE_ACCOUNT_ENV = "KUBEOPT_WORKER_SERVICE_ACCOUNT"


def _env_suffix(backend: BackendName) -> str:
    return backend.value.upper().replace("-", "_")


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs to know that is not in a ModelOptimization."""

    default_image: str = DEFAULT_WORKER_IMAGE
    images: Mapping[BackendName, str] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()
    metrics_port: int = DEFAULT_METRICS_PORT
    worker_service_account: str = DEFAULT_WORKER_SERVICE_ACCOUNT

    @classmethod
    def from_env(cls, env: Mapping[str, str], namespaces: tuple[str, ...] = (),
                 metrics_port: int = DEFAULT_METRICS_PORT) -> OperatorSettings:
        """Read ``KUBEOPT_WORKER_IMAGE``, ``KUBEOPT_WORKER_IMAGE_<BACKEND>`` (e.g. ``_TF_TRT``) and
        ``KUBEOPT_WORKER_SERVICE_ACCOUNT``. Without ``KUBEOPT_WORKER_IMAGE`` each backend gets its own
        published image (kubeopt/api/images.env); with it, that one image serves every backend not named."""
        defaults = {} if env.get(IMAGE_ENV_PREFIX) else backend_images()
        images = defaults | {
            backend: env[f"{IMAGE_ENV_PREFIX}_{_env_suffix(backend)}"]
            for backend in BackendName
            if env.get(f"{IMAGE_ENV_PREFIX}_{_env_suffix(backend)}")
        }
        return cls(
            default_image=env.get(IMAGE_ENV_PREFIX) or DEFAULT_WORKER_IMAGE,
            images=images,
            namespaces=namespaces,
            metrics_port=metrics_port,
            worker_service_account=env.get(WORKER_SERVICE_ACCOUNT_ENV) or DEFAULT_WORKER_SERVICE_ACCOUNT,
        )

    def image_for(self, backend: BackendName, overrides: Images) -> str:
        """The worker image of a backend: the spec's own, the spec's default, the operator's, the default."""
        field_name = backend.value.replace("-", "_")
        own = getattr(overrides, field_name, None)
        return str(own or overrides.default or self.images.get(backend) or self.default_image)


def settings_from_process(namespaces: list[str] | None, metrics_port: int) -> OperatorSettings:
    return OperatorSettings.from_env(os.environ, tuple(namespaces or ()), metrics_port)
