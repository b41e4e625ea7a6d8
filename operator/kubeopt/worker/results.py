"""What one target run produced: the frozen result the report, table and summary are made from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeopt.api.reasons import Reason
from kubeopt.api.spec import Target
from kubeopt.storage.publish import Published
from kubeopt.storage.runs import RunLocation
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.validate import Accuracy, Verdict


@dataclass(frozen=True)
class TargetResult:
    target: Target
    reason: Reason = Reason.SUCCEEDED
    message: str = ""
    compile_seconds: float | None = None
    cache_hit: bool = False
    accuracy: Accuracy | None = None
    verdict: Verdict | None = None
    timings: dict[int, BatchTiming] = field(default_factory=dict)
    baseline_timings: dict[int, BatchTiming] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    published: Published | None = None
    run: RunLocation | None = None  # where this run's record (and, succeeded, its files) went
    current: bool = False  # the target's pointer moved to this run

    @property
    def succeeded(self) -> bool:
        return self.reason is Reason.SUCCEEDED

    @property
    def eligible(self) -> bool:
        """Measured and inside the accuracy budget: may be chosen as best."""
        return self.succeeded and self.verdict is not None and self.verdict.within_budget and bool(self.timings)

    def speedup(self, batch: int) -> float | None:
        if batch not in self.timings or batch not in self.baseline_timings:
            return None
        return self.timings[batch].throughput / self.baseline_timings[batch].throughput

    def speedup_doubts(self, batch: int) -> tuple[str, ...]:
        """Why the speedup at ``batch`` cannot be trusted (benchmark.py's rule on the target's and
        the baseline's timing); empty when both timings are stable or there is no speedup."""
        if self.speedup(batch) is None:
            return ()
        return (tuple(f"target {r}" for r in self.timings[batch].stability.reasons)
                + tuple(f"baseline {r}" for r in self.baseline_timings[batch].stability.reasons))
