"""The resource's status from its targets' observations: targets[], best, phase.

Pure functions. Figures become strings (API conventions avoid floats). A target whose Job
is gone (ttlSecondsAfterFinished) keeps the result recorded earlier for the same Job name,
whatever the generation since (a Job name is its target's work); a target whose work
changed is never carried over, because its Job name differs. The first failed attempt of a
Job stays in its target's status once seen, even when that attempt's pod is gone.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubeopt.api.spec import Objective, Selection
from kubeopt.api.status import ArtifactStatus, Best, FailureStatus, Phase, TargetMetrics, TargetStatus
from kubeopt.api.summary import TargetSummary
from kubeopt.controller.observe import Observation


def figure(value: float | None) -> str | None:
    """A measured number as the status stores it ("1234.5"), None stays None."""
    return None if value is None else repr(float(value))


def metrics_of(result: TargetSummary) -> TargetMetrics | None:
    if result.throughput is None and result.p50_ms is None and result.speedup is None:
        return None
    return TargetMetrics(
        batch_size=result.batch, throughput=figure(result.throughput),
        baseline_throughput=figure(result.baseline_throughput), latency_p50_ms=figure(result.p50_ms),
        latency_p99_ms=figure(result.p99_ms), speedup=figure(result.speedup),
        relative_error=figure(result.relative_error), top1_agreement=figure(result.top1_agreement),
        accuracy=figure(result.accuracy), compile_seconds=figure(result.compile_seconds),
    )


def target_status(name: str, job_name: str, observation: Observation | None,
                  previous: TargetStatus | None) -> TargetStatus:
    """One entry of status.targets; a finished result recorded for this Job name is kept."""
    if observation is None:
        if previous is not None and previous.job_name == job_name and previous.phase in (Phase.SUCCEEDED,
                                                                                          Phase.FAILED):
            return previous
        return TargetStatus(name=name, phase=Phase.PENDING, job_name=job_name)
    result = observation.result
    first = observation.first_failure
    first_failure = FailureStatus(reason=first.reason, message=first.message, time=first.time) if first else None
    if first_failure is None and previous is not None and previous.job_name == observation.job_name:
        first_failure = previous.first_failure  # its pod is gone (deleted, evicted): the record stays
    artifact = None
    if result is not None and result.artifact is not None:
        artifact = ArtifactStatus(uri=result.artifact.uri, sha256=result.artifact.sha256, size=result.artifact.size,
                                  run_id=result.artifact.run_id)
    return TargetStatus(
        name=name, phase=observation.phase, job_name=observation.job_name, attempts=observation.attempts,
        start_time=observation.start_time, completion_time=observation.completion_time,
        cache_hit=result.cache_hit if result else None, reason=observation.reason, message=observation.message,
        first_failure=first_failure, metrics=metrics_of(result) if result else None, artifact=artifact,
        run_uri=result.run_uri if result else None,
    )


def _score(target: TargetStatus, objective: Objective) -> float | None:
    metrics = target.metrics
    if metrics is None:
        return None
    if objective is Objective.LATENCY:
        return -float(metrics.latency_p50_ms) if metrics.latency_p50_ms is not None else None
    return float(metrics.throughput) if metrics.throughput is not None else None


def choose_best(targets: Sequence[TargetStatus], selection: Selection) -> Best | None:
    """The succeeded target with the highest throughput (or lowest p50 latency); ties go to spec order.

    Every figure was read by the worker at the selection batch size, and a target outside the
    accuracy budget never succeeds, so only the objective decides here.
    """
    best: TargetStatus | None = None
    best_score = 0.0
    for target in targets:
        if target.phase is not Phase.SUCCEEDED:
            continue
        score = _score(target, selection.objective)
        if score is not None and (best is None or score > best_score):
            best, best_score = target, score
    if best is None:
        return None
    return Best(target=best.name, speedup=best.metrics.speedup if best.metrics else None,
                artifact_uri=best.artifact.uri if best.artifact else None)


def overall_phase(targets: Sequence[TargetStatus], suspended: bool) -> Phase:
    """One word for ``kubectl get``; conditions carry the meaning."""
    phases = {t.phase for t in targets}
    if phases <= {Phase.SUCCEEDED, Phase.FAILED}:
        return Phase.SUCCEEDED if Phase.SUCCEEDED in phases else Phase.FAILED
    if suspended:
        return Phase.SUSPENDED
    return Phase.RUNNING if Phase.RUNNING in phases or phases & {Phase.SUCCEEDED, Phase.FAILED} else Phase.PENDING
