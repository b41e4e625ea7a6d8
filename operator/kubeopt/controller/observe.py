"""What a target's Job and pods say: phase, attempts, times, and why it fails or is stuck.

Pure functions over the Job and pod objects as the watches deliver them (plain dicts). The
worker's result is its container's termination message (``kubeopt.api.summary``); when
there is none, the reason comes from the container (OOMKilled), the Job's condition
(DeadlineExceeded) or the exit code, in that order. A pod the scheduler cannot place is
reported as Unschedulable with the scheduler's own message, while the Job still waits.

A target is Running only once a pod of its Job runs (pod phase Running, or its worker
container running or terminated): the Job's ``status.active`` also counts pods that wait for
a node or an image, so it says nothing about running. The first failed attempt (the oldest
pod whose worker failed) is kept beside the last one: a retry often fails differently (e.g. a
storage error after an out-of-memory kill), and the first cause is usually the one to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from kubeopt.api.reasons import Reason, reason_for_exit_code
from kubeopt.api.status import Phase
from kubeopt.api.summary import Summary, TargetSummary, decode
from kubeopt.controller.names import WORKER_CONTAINER

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


@dataclass(frozen=True)
class Failure:
    """Why one attempt (pod) failed, and when."""

    reason: str
    message: str
    time: str | None = None


@dataclass(frozen=True)
class Observation:
    """One target's state as read from its Job and pods."""

    job_name: str
    phase: Phase
    attempts: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    reason: str | None = None
    message: str | None = None
    result: TargetSummary | None = None
    stuck: bool = False
    first_failure: Failure | None = None

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)


def job_name_of_pod(pod: dict[str, Any]) -> str | None:
    labels = pod.get("metadata", {}).get("labels") or {}
    for key in JOB_NAME_LABELS:
        if labels.get(key):
            return str(labels[key])
    return None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def job_finished(job: dict[str, Any]) -> bool:
    """True once the Job controller declared the Job Complete or Failed."""
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _worker_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == WORKER_CONTAINER:
            return dict(status.get("state") or {})
    return {}


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    state = _worker_state(pod).get("terminated")
    return dict(state) if state else None


def pod_ran(pod: dict[str, Any]) -> bool:
    """True once the pod's worker runs or ran: pod phase Running, or a running/terminated worker."""
    if (pod.get("status") or {}).get("phase") == "Running":
        return True
    state = _worker_state(pod)
    return bool(state.get("running") or state.get("terminated"))


def _newest_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: (p.get("metadata", {}).get("creationTimestamp") or "",
                                       p.get("metadata", {}).get("name") or ""), reverse=True)


def read_summary(message: str | None) -> Summary | None:
    """The worker's summary from a termination message, or None when it is not one."""
    if not message:
        return None
    try:
        return decode(message)
    except (ValidationError, ValueError):
        return None


def _target_result(summary: Summary | None, target: str) -> TargetSummary | None:
    if summary is None:
        return None
    return next((t for t in summary.targets if t.name == target), None)


def _failure(job: dict[str, Any], pods: list[dict[str, Any]], target: str) -> tuple[str, str, TargetSummary | None]:
    """(reason, message, result) of a failed Job: its deadline, else what its newest finished pod says."""
    failed = _condition(job, "Failed") or {}
    if failed.get("reason") == "DeadlineExceeded":
        seconds = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return (Reason.DEADLINE_EXCEEDED.value,
                f"the Job ran past spec.activeDeadlineSeconds ({seconds}s): raise it or shrink the benchmark", None)
    for pod in _newest_first(pods):
        state = _terminated(pod)
        found = _attempt_failure(state, target) if state is not None else None
        if found is not None:
            return found
    reason = str(failed.get("reason") or Reason.INTERNAL_ERROR.value)
    return reason, str(failed.get("message") or "the Job failed"), None


def _attempt_failure(state: dict[str, Any], target: str) -> tuple[str, str, TargetSummary | None] | None:
    """(reason, message, result) of one terminated worker that failed; None when it succeeded."""
    if state.get("reason") == "OOMKilled":
        return Reason.OOM_KILLED.value, "the worker ran out of memory: raise spec.resources.memory", None
    summary = read_summary(state.get("message"))
    result = _target_result(summary, target)
    if result is not None and result.reason is not Reason.SUCCEEDED:
        return result.reason.value, result.message, result
    if summary is not None and summary.reason is not Reason.SUCCEEDED:
        return summary.reason.value, summary.message, result
    code = int(state.get("exitCode") or 0)
    if code:
        tail = (state.get("message") or "").strip()[-300:]
        return reason_for_exit_code(code).value, f"exit code {code}" + (f": {tail}" if tail else ""), None
    return None


def first_failure(pods: list[dict[str, Any]], target: str) -> Failure | None:
    """The failure of the oldest pod whose worker failed, from its termination state."""
    for pod in reversed(_newest_first(pods)):
        state = _terminated(pod)
        found = _attempt_failure(state, target) if state is not None else None
        if found is not None and state is not None:
            reason, message, _ = found
            return Failure(reason=reason, message=message, time=state.get("finishedAt"))
    return None


def _succeeded(pods: list[dict[str, Any]], target: str) -> TargetSummary | None:
    for pod in _newest_first(pods):
        state = _terminated(pod)
        if state is not None and int(state.get("exitCode") or 0) == 0:
            return _target_result(read_summary(state.get("message")), target)
    return None


def _waiting_reason(pods: list[dict[str, Any]]) -> tuple[str, str, bool] | None:
    """(reason, message, stuck) for a running Job whose newest pod cannot run or was OOMKilled."""
    for pod in _newest_first(pods):
        status = pod.get("status", {})
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                    and cond.get("reason") == "Unschedulable":
                return Reason.UNSCHEDULABLE.value, str(cond.get("message") or "no node fits the pod"), True
        state = _terminated(pod)
        if state is not None and state.get("reason") == "OOMKilled":
            message = "an attempt ran out of memory; retrying (raise spec.resources.memory)"
            return Reason.OOM_KILLED.value, message, False
        return None
    return None


def observe(job: dict[str, Any], pods: list[dict[str, Any]], target: str) -> Observation:
    """The target's state from its Job and the Job's pods."""
    status = job.get("status") or {}
    attempts = int(status.get("active") or 0) + int(status.get("succeeded") or 0) + int(status.get("failed") or 0)
    base = Observation(job_name=str(job.get("metadata", {}).get("name")), phase=Phase.PENDING, attempts=attempts,
                       start_time=status.get("startTime"), completion_time=status.get("completionTime"),
                       first_failure=first_failure(pods, target))
    if _condition(job, "Complete"):
        result = _succeeded(pods, target)
        if result is not None and result.phase != "Succeeded":
            return replace(base, phase=Phase.FAILED, reason=result.reason.value, message=result.message,
                           result=result)
        message = result.message if result else "finished without a summary"
        return replace(base, phase=Phase.SUCCEEDED, reason=Reason.SUCCEEDED.value, message=message, result=result)
    failed = _condition(job, "Failed")
    if failed:
        reason, message, result = _failure(job, pods, target)
        completion = base.completion_time or failed.get("lastTransitionTime")
        return replace(base, phase=Phase.FAILED, reason=reason, message=message, result=result,
                       completion_time=completion)
    if _condition(job, "Suspended"):
        return replace(base, reason="Suspended",
                       message="the Job is suspended (spec.suspend is true or no parallelism slot is "
                               "free); it is kept and resumes later")
    waiting = _waiting_reason(pods)
    if waiting is not None:
        reason, message, stuck = waiting
        return replace(base, phase=Phase.PENDING if stuck else Phase.RUNNING, reason=reason, message=message,
                       stuck=stuck)
    return replace(base, phase=Phase.RUNNING if any(pod_ran(pod) for pod in pods) else Phase.PENDING)
