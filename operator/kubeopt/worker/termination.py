"""Build and write the termination message the controller reads."""

from __future__ import annotations

import logging
from pathlib import Path

from kubeopt.api.reasons import Reason
from kubeopt.api.summary import ArtifactRef, Summary, TargetSummary, encode
from kubeopt.worker.results import TargetResult

log = logging.getLogger(__name__)


def target_summary(result: TargetResult, batch: int) -> TargetSummary:
    timing = result.timings.get(batch)
    base = result.baseline_timings.get(batch)
    acc = result.accuracy
    artifact = None
    if result.published is not None:
        artifact = ArtifactRef(uri=str(result.published.uri), sha256=result.published.manifest_sha256,
                               size=result.published.size, run_id=result.run.run_id if result.run else None)
    return TargetSummary(
        name=result.target.name, phase="Succeeded" if result.succeeded else "Failed", reason=result.reason,
        message=result.message[:500], batch=batch if timing else None,
        throughput=_round(timing.throughput if timing else None), baseline_throughput=_round(
            base.throughput if base else None), p50_ms=_round(timing.p50_ms if timing else None, 4),
        p99_ms=_round(timing.p99_ms if timing else None, 4), speedup=_round(result.speedup(batch), 3),
        relative_error=_round(acc.relative_error if acc else None, 6),
        top1_agreement=_round(acc.top1_agreement if acc else None, 5),
        accuracy=_round(acc.accuracy if acc else None, 5),
        baseline_accuracy=_round(acc.baseline_accuracy if acc else None, 5),
        compile_seconds=_round(result.compile_seconds, 2),
        within_budget=result.verdict.within_budget if result.verdict else None,
        throughput_by_batch={str(b): round(t.throughput, 1) for b, t in result.timings.items()} or None,
        artifact=artifact, cache_hit=result.cache_hit if result.timings else None,
        run_uri=str(result.run.uri) if result.run else None,
    )


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def build_summary(results: list[TargetResult], batch: int, best: str | None, device: str,
                  report_uri: str | None, failure_reason: Reason | None, failure_message: str) -> Summary:
    failed = [r for r in results if not r.succeeded]
    if failure_reason is not None:
        reason, message = failure_reason, failure_message
    elif failed and len(failed) == len(results):
        reason, message = failed[0].reason, f"{failed[0].target.name}: {failed[0].message}"
    else:
        reason, message = Reason.SUCCEEDED, f"{len(results) - len(failed)}/{len(results)} targets succeeded"
    return Summary(status="Succeeded" if reason is Reason.SUCCEEDED else "Failed", reason=reason,
                   message=message[:500], device=device, targets=[target_summary(r, batch) for r in results],
                   best=best, report_uri=report_uri)


def write_termination_message(summary: Summary, path: Path) -> None:
    """Write the summary; a missing directory (a laptop has no /dev/termination-log) is only logged."""
    try:
        path.write_text(encode(summary))
    except OSError as error:
        log.warning("could not write the termination message to %s: %s", path, error)
