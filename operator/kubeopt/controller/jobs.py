"""The Job builder: one batch/v1 Job per target, as a plain manifest (a pure function).

The pod runs ``kubeopt run --spec-json ... --target <name>`` with no shell, as a non-root
user on a read-only root filesystem; scratch space is an emptyDir at /workspace and /tmp.
A pod failure policy fails the Job at once when the worker exits with a permanent reason's
code (a retry cannot fix an invalid spec or an exceeded accuracy budget); other failures use
``backoffLimit``. The termination message carries the worker's JSON summary.

The resource the pod reads is the target's work (``names.work``), exactly what the Job's name
hashes: a Job kept across a change of ``suspend``, ``parallelism`` or
``ttlSecondsAfterFinished`` computes what a new one would.

Every pod runs under the operator's worker ServiceAccount with no token mounted; the chart's
``operator-jobs`` admission policy admits only Jobs of this shape from the operator, so the
builder and the policy must change together (an e2e test runs a built Job through the policy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubeopt.api.reasons import EXIT_CODES, PERMANENT, Reason
from kubeopt.api.spec import GROUP, KIND, VERSION, ModelOptimizationSpec, Target, to_wire
from kubeopt.api.status import Phase, TargetStatus
from kubeopt.controller.names import WORKER_CONTAINER, job_labels, job_name, work
from kubeopt.controller.settings import OperatorSettings

WORKSPACE = "/workspace"
TERMINATION_LOG = "/dev/termination-log"
WORKER_UID = 65532
GPU_RESOURCE = "nvidia.com/gpu"


class JobRejected(Exception):
    """The API server refused to create a target's Job (403 or 422: an admission policy, RBAC).

    Permanent for this Job: the same manifest would be refused again, so the target is
    recorded as failed (``failed_status``) and its Job is not created again until its work
    changes (a new spec) and with it the Job's name.
    """

    def __init__(self, job_name: str, code: int, message: str) -> None:
        super().__init__(f"the API server refused Job {job_name} ({code}): {message}")
        self.job_name = job_name
        self.code = code
        self.message = message

    def failed_status(self, target: str) -> TargetStatus:
        """The target's status entry: Failed, reason JobRejected, the server's message."""
        return TargetStatus(name=target, phase=Phase.FAILED, job_name=self.job_name,
                            reason=Reason.JOB_REJECTED.value,
                            message=f"the API server refused the target's Job: {self.message}"[:1000])


@dataclass(frozen=True)
class Owner:
    """The resource a Job belongs to, as the API server returned it."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: dict[str, Any]


def permanent_exit_codes() -> list[int]:
    """Exit codes the worker uses for failures a retry cannot fix, sorted."""
    return sorted(EXIT_CODES[reason] for reason in PERMANENT)


def resource_json(owner: Owner, target: str) -> str:
    """The resource as the worker reads it from ``--spec-json``: its name and generation (part of the
    run id the worker publishes under) and the target's work."""
    document = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": owner.name, "namespace": owner.namespace, "generation": owner.generation},
        "spec": work(owner.spec, target),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def target_job_name(owner: Owner, target: Target) -> str:
    """The Job name of ``target``'s current work (the same across generations that keep it)."""
    return job_name(owner.name, target.name, work(owner.spec, target.name))


def worker_command(owner: Owner, target: Target) -> list[str]:
    return [
        "kubeopt", "run", "--spec-json", resource_json(owner, target.name), "--target", target.name,
        "--termination-log", TERMINATION_LOG, "--workspace", WORKSPACE,
    ]


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": WORKER_UID,
        "runAsGroup": WORKER_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: ModelOptimizationSpec) -> dict[str, Any]:
    """Requests equal limits (CPU and memory when given), plus whole GPUs when asked for."""
    wanted: dict[str, str] = {}
    if spec.resources.cpu:
        wanted["cpu"] = spec.resources.cpu
    if spec.resources.memory:
        wanted["memory"] = spec.resources.memory
    limits = dict(wanted)
    if spec.resources.gpu > 0:
        limits[GPU_RESOURCE] = str(spec.resources.gpu)
    result: dict[str, Any] = {}
    if wanted:
        result["requests"] = wanted
    if limits:
        result["limits"] = limits
    return result


def storage_env(spec: ModelOptimizationSpec, extra: tuple[tuple[str, str], ...] = ()
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(env, envFrom): the chart's extra variables (jobs.env), the endpoint and region as values,
    credentials only from the Secret."""
    env = [{"name": name, "value": value} for name, value in extra]
    env.append({"name": "HOME", "value": "/tmp"})
    if spec.storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL_S3", "value": spec.storage.endpoint})
    if spec.storage.region:
        env.append({"name": "AWS_REGION", "value": spec.storage.region})
    env_from = [{"secretRef": {"name": spec.storage.secret_ref.name}}] if spec.storage.secret_ref else []
    return env, env_from


def pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            {"action": "FailJob",
             "onExitCodes": {"containerName": WORKER_CONTAINER, "operator": "In", "values": permanent_exit_codes()}},
            # An evicted or preempted pod is not the worker's fault: retry without counting it.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def pod_spec(owner: Owner, spec: ModelOptimizationSpec, target: Target, settings: OperatorSettings) -> dict[str, Any]:
    env, env_from = storage_env(spec, settings.worker_pod.env)
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": settings.image_for(target.backend, spec.images),
        "imagePullPolicy": spec.images.pull_policy,
        "command": worker_command(owner, target),
        "env": env,
        "resources": resources(spec),
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if env_from:
        container["envFrom"] = env_from
    pod: dict[str, Any] = {
        "restartPolicy": "Never",  # podFailurePolicy requires it
        # The operator's account, never the spec's: the worker never talks to the API, so it
        # gets no token, and its account has no RBAC bindings (admission checks both).
        "serviceAccountName": settings.worker_service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": WORKER_UID, "runAsGroup": WORKER_UID,
                            "fsGroup": WORKER_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if settings.worker_pod.priority_class_name:
        pod["priorityClassName"] = settings.worker_pod.priority_class_name
    if settings.worker_pod.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in settings.worker_pod.image_pull_secrets]
    if spec.resources.node_selector:
        pod["nodeSelector"] = dict(spec.resources.node_selector)
    if spec.resources.tolerations:
        pod["tolerations"] = [to_wire(t) for t in spec.resources.tolerations]
    return pod


def build_job(owner: Owner, spec: ModelOptimizationSpec, target: Target, settings: OperatorSettings) -> dict[str, Any]:
    """The Job manifest of one target (owner references are added by the caller: kopf.adopt)."""
    labels = job_labels(owner.name, owner.uid, target.name, owner.generation)
    template_metadata: dict[str, Any] = {"labels": dict(labels)}
    if settings.worker_pod.annotations:
        template_metadata["annotations"] = dict(settings.worker_pod.annotations)
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "suspend": spec.suspend,
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": template_metadata, "spec": pod_spec(owner, spec, target, settings)},
    }
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": target_job_name(owner, target), "namespace": owner.namespace, "labels": labels},
        "spec": job_spec,
    }
