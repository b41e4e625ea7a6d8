"""Choose the best target among those inside the accuracy budget, by the spec's objective."""

from __future__ import annotations

from kubeopt.api.spec import Objective, Selection
from kubeopt.worker.results import TargetResult


def selection_batch(selection: Selection, batch_sizes: list[int]) -> int:
    """The batch size the objective is read at: as given, else largest (throughput) or smallest (latency)."""
    if selection.batch_size is not None:
        return selection.batch_size
    return max(batch_sizes) if selection.objective is Objective.THROUGHPUT else min(batch_sizes)


def choose_best(results: list[TargetResult], selection: Selection, batch_sizes: list[int]) -> TargetResult | None:
    """The eligible result with the highest throughput or lowest p50 latency; None when none is eligible."""
    batch = selection_batch(selection, batch_sizes)
    eligible = [r for r in results if r.eligible and batch in r.timings]
    if not eligible:
        return None
    if selection.objective is Objective.THROUGHPUT:
        return max(eligible, key=lambda r: r.timings[batch].throughput)
    return min(eligible, key=lambda r: r.timings[batch].p50_ms)
