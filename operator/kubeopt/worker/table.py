"""The terminal table a local run ends with.

A speedup made from an unstable timing (benchmark.py's rule) carries ``UNSTABLE_MARK`` and a
footnote that says which timing and why, so a noisy measurement is not read as a result.
"""

from __future__ import annotations

from kubeopt.worker.benchmark import MAX_MEDIAN_SPREAD, MAX_TAIL_RATIO, SLICES
from kubeopt.worker.results import TargetResult

UNSTABLE_MARK = "!"
UNSTABLE_NOTE = (f"{UNSTABLE_MARK} unstable timing (p99/p50 > {MAX_TAIL_RATIO:g}, or the medians of {SLICES} "
                 f"slices of the timed iterations > {MAX_MEDIAN_SPREAD:.0%} apart): do not trust that speedup; "
                 "re-run on an idle machine or raise benchmark.iterations")


def _num(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def render_table(results: list[TargetResult], best: str | None) -> str:
    """One row per target and batch size: throughput, p50/p99, speedup, accuracy, artifact."""
    header = ["target", "backend", "precision", "batch", "samples/s", "base/s", "p50 ms", "p99 ms", "speedup",
              "rel.err", "top1 agree", "acc (base)", "compile s", "status", "artifact"]
    rows: list[list[str]] = [header]
    doubts: list[str] = []
    for result in results:
        t = result.target
        acc = result.accuracy
        accuracy = "-"
        if acc and acc.accuracy is not None and acc.baseline_accuracy is not None:
            accuracy = f"{acc.accuracy:.4f} ({acc.baseline_accuracy:.4f})"
        status = "ok" if result.succeeded else result.reason.value
        name = t.name + (" *" if t.name == best else "")
        artifact = str(result.published.uri) if result.published else "-"
        batches: list[int | None] = [*sorted(result.timings)] or [None]
        for index, batch in enumerate(batches):
            timing = result.timings.get(batch) if batch is not None else None
            base = result.baseline_timings.get(batch) if batch is not None else None
            first = index == 0
            speedup = _num(result.speedup(batch) if batch is not None else None, 2, "x")
            doubt = result.speedup_doubts(batch) if batch is not None else ()
            if doubt:
                speedup += UNSTABLE_MARK
                doubts.append(f"{UNSTABLE_MARK} {t.name} batch {batch}: {'; '.join(doubt)}")
            rows.append([
                name if first else "", t.backend.value if first else "", t.precision.value if first else "",
                "-" if batch is None else str(batch), _num(timing.throughput if timing else None),
                _num(base.throughput if base else None), _num(timing.p50_ms if timing else None, 3),
                _num(timing.p99_ms if timing else None, 3),
                speedup,
                f"{acc.relative_error:.2e}" if acc and first else "",
                _num(acc.top1_agreement, 4) if acc and first else "", accuracy if first else "",
                _num(result.compile_seconds) if first else "", status if first else "", artifact if first else "",
            ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("* best within the accuracy budget" if best else "no target within the budget")
    if doubts:
        lines += [UNSTABLE_NOTE, *doubts]
    lines += [f"{r.target.name} failed: {r.reason.value}: {r.message}" for r in results if not r.succeeded]
    return "\n".join(lines)
