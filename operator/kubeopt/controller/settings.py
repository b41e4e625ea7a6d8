"""Operator settings: one frozen dataclass handed to the code that needs it.

Module globals here are only defaults; ``OperatorSettings.from_env`` reads the environment
once at start-up (the Helm chart sets it) and nothing else looks at ``os.environ``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeopt.api.backends import image_env_suffix
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
# The chart's worker settings (values workerServiceAccount.*, jobs.*, imagePullSecrets); the
# structured ones are JSON, as the chart writes them with toJson.
WORKER_SERVICE_ACCOUNT_CREATE_ENV = "KUBEOPT_WORKER_SERVICE_ACCOUNT_CREATE"
WORKER_SERVICE_ACCOUNT_ANNOTATIONS_ENV = "KUBEOPT_WORKER_SERVICE_ACCOUNT_ANNOTATIONS"
JOB_POD_ANNOTATIONS_ENV = "KUBEOPT_JOB_POD_ANNOTATIONS"
JOB_PRIORITY_CLASS_ENV = "KUBEOPT_JOB_PRIORITY_CLASS_NAME"
JOB_IMAGE_PULL_SECRETS_ENV = "KUBEOPT_JOB_IMAGE_PULL_SECRETS"
JOB_ENV_ENV = "KUBEOPT_JOB_ENV"
LIVENESS_TIMEOUT_ENV = "KUBEOPT_LIVENESS_TIMEOUT"
DEFAULT_LIVENESS_TIMEOUT = 180.0
# Set by the Job builder from the spec; an extra variable of the same name would be ambiguous.
RESERVED_JOB_ENV = frozenset({"HOME", "AWS_ENDPOINT_URL_S3", "AWS_REGION"})


class SettingsError(ValueError):
    """An environment variable the chart sets holds something the operator cannot use."""


def _json(env: Mapping[str, str], name: str, chart_value: str, default: Any) -> Any:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"{name} (chart value {chart_value}) is not JSON: {error}") from None


def _string_map(env: Mapping[str, str], name: str, chart_value: str) -> dict[str, str]:
    value = _json(env, name, chart_value, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SettingsError(f"{name} (chart value {chart_value}) must be a map of strings to strings, "
                            f"e.g. {{\"eks.amazonaws.com/role-arn\": \"arn:...\"}}")
    return {str(k): v for k, v in value.items()}


def _job_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    value = _json(env, JOB_ENV_ENV, "jobs.env", [])
    if not isinstance(value, list) or not all(
            isinstance(item, dict) and set(item) == {"name", "value"} and isinstance(item["name"], str)
            and item["name"] and isinstance(item["value"], str) for item in value):
        raise SettingsError(f"{JOB_ENV_ENV} (chart value jobs.env) must be a list of {{name, value}} with string "
                            "values (credentials belong in the spec's storage.secretRef)")
    reserved = sorted({item["name"] for item in value} & RESERVED_JOB_ENV)
    if reserved:
        raise SettingsError(f"{JOB_ENV_ENV} (chart value jobs.env) sets {', '.join(reserved)}, which the operator "
                            "sets from each spec (storage.endpoint, storage.region): remove them from jobs.env")
    return tuple((item["name"], item["value"]) for item in value)


def _names(env: Mapping[str, str], name: str, chart_value: str) -> tuple[str, ...]:
    value = _json(env, name, chart_value, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(f"{name} (chart value {chart_value}) must be a list of Secret names")
    return tuple(value)


def _seconds(env: Mapping[str, str], name: str, chart_value: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise SettingsError(f"{name} (chart value {chart_value}) must be a positive number of seconds, not {raw!r}")
    return value


@dataclass(frozen=True)
class WorkerPod:
    """What every Job's pod gets from the chart, whatever its spec: the worker ServiceAccount's
    annotations (IRSA, Workload Identity) and whether the operator creates that account, pod
    annotations, a priority class, image pull Secrets and extra environment variables."""

    create_service_account: bool = True
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    priority_class_name: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerPod:
        """Raises ``SettingsError`` naming the variable and its chart value when one is malformed."""
        create = env.get(WORKER_SERVICE_ACCOUNT_CREATE_ENV, "true").strip().lower()
        if create not in ("true", "false"):
            raise SettingsError(f"{WORKER_SERVICE_ACCOUNT_CREATE_ENV} must be true or false, not {create!r}")
        return cls(
            create_service_account=create == "true",
            service_account_annotations=_string_map(env, WORKER_SERVICE_ACCOUNT_ANNOTATIONS_ENV,
                                                    "workerServiceAccount.annotations"),
            annotations=_string_map(env, JOB_POD_ANNOTATIONS_ENV, "jobs.podAnnotations"),
            priority_class_name=env.get(JOB_PRIORITY_CLASS_ENV, ""),
            image_pull_secrets=_names(env, JOB_IMAGE_PULL_SECRETS_ENV, "imagePullSecrets"),
            env=_job_env(env),
        )


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs to know that is not in a ModelOptimization."""

    default_image: str = DEFAULT_WORKER_IMAGE
    images: Mapping[BackendName, str] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()
    metrics_port: int = DEFAULT_METRICS_PORT
    worker_service_account: str = DEFAULT_WORKER_SERVICE_ACCOUNT
    worker_pod: WorkerPod = field(default_factory=WorkerPod)
    # Seconds without progress of kopf's loop or handler threads before /healthz fails (liveness.py).
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str], namespaces: tuple[str, ...] = (),
                 metrics_port: int = DEFAULT_METRICS_PORT) -> OperatorSettings:
        """Read ``KUBEOPT_WORKER_IMAGE``, ``KUBEOPT_WORKER_IMAGE_<BACKEND>`` (e.g. ``_TF_TRT``) and
        ``KUBEOPT_WORKER_SERVICE_ACCOUNT``, and the worker pod's settings (``WorkerPod.from_env``).
        Without ``KUBEOPT_WORKER_IMAGE`` each backend gets its own published image (its description's,
        kubeopt/api/images.env); with it, that one image serves every backend not named."""
        defaults = {} if env.get(IMAGE_ENV_PREFIX) else backend_images()
        images = defaults | {
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
            worker_pod=WorkerPod.from_env(env),
            liveness_timeout=_seconds(env, LIVENESS_TIMEOUT_ENV, "livenessTimeoutSeconds", DEFAULT_LIVENESS_TIMEOUT),
        )

    def image_for(self, backend: BackendName, overrides: Images) -> str:
        """The worker image of a backend: the spec's own, the spec's default, the operator's, the default."""
        own = overrides.for_backend(backend)
        return str(own or overrides.default or self.images.get(backend) or self.default_image)


def settings_from_process(namespaces: list[str] | None, metrics_port: int) -> OperatorSettings:
    return OperatorSettings.from_env(os.environ, tuple(namespaces or ()), metrics_port)
