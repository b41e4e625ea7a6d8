"""Operator settings: one frozen dataclass handed to the code that needs it.

Module globals here are only defaults; ``OperatorSettings.from_env`` reads the environment
once at start-up (the Helm chart sets it) and nothing else looks at ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeopt.api.backends import image_env_suffix
from kubeopt.api.spec import BackendName, Images

DEFAULT_WORKER_IMAGE = "ghcr.io/kubeopt/worker:0.1.0"
DEFAULT_METRICS_PORT = 8080
IMAGE_ENV_PREFIX = "KUBEOPT_WORKER_IMAGE"
# Jobs always run under this account, never one a spec names: it has no RBAC bindings and no
# token (``automountServiceAccountToken: false``), so a worker can reach nothing in the API.
DEFAULT_WORKER_SERVICE_ACCOUNT = "kubeopt-worker"
WORKER_SERVICE_ACCOUNT_ENV = "KUBEOPT_WORKER_SERVICE_ACCOUNT"


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
        ``KUBEOPT_WORKER_SERVICE_ACCOUNT``."""
        images = {
            backend: env[f"{IMAGE_ENV_PREFIX}_{image_env_suffix(backend)}"]
            for backend in BackendName
            if env.get(f"{IMAGE_ENV_PREFIX}_{image_env_suffix(backend)}")
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
        own = overrides.for_backend(backend)
        return str(own or overrides.default or self.images.get(backend) or self.default_image)


def settings_from_process(namespaces: list[str] | None, metrics_port: int) -> OperatorSettings:
    return OperatorSettings.from_env(os.environ, tuple(namespaces or ()), metrics_port)
