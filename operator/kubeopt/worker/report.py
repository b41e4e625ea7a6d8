"""Reports: report.json (every figure) and report.html (tables and inline SVG charts).

The HTML needs no network and no JavaScript: charts are drawn as SVG (charts.py), so the report
opens anywhere, including from an object store's console. Numbers keep the precision they are
measured in (significant digits: a relative error of 2.04e-07 is not 0.00000), and a timing that
benchmark.py's rule finds unstable is marked in report.json (``stable``, ``unstableReasons``,
``unstableSpeedups``), in the tables and in the charts, instead of standing as a bare speedup.
"""

from __future__ import annotations

import html
import json
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from kubeopt import __version__
from kubeopt.api.spec import AccuracyBudget
from kubeopt.worker.benchmark import MAX_MEDIAN_SPREAD, MAX_TAIL_RATIO, SLICES, BatchTiming
from kubeopt.worker.charts import accuracy_chart, latency_chart, significant, speedup_chart
from kubeopt.worker.results import TargetResult

UNSTABLE_RULE = (f"p99/p50 above {MAX_TAIL_RATIO:g}, or the medians of {SLICES} consecutive slices of the timed "
                 f"iterations more than {MAX_MEDIAN_SPREAD:.0%} apart")


def timing_json(timing: BatchTiming) -> dict[str, Any]:
    stability = timing.stability
    return {"batchSize": timing.batch_size, "iterations": timing.iterations, "throughput": timing.throughput,
            "p50Ms": timing.p50_ms, "p90Ms": timing.p90_ms, "p99Ms": timing.p99_ms,
            "minMs": min(timing.latencies_ms), "maxMs": max(timing.latencies_ms),
            "stable": stability.stable, "unstableReasons": list(stability.reasons),
            "p99OverP50": stability.tail_ratio, "sliceMediansMs": list(stability.slice_medians_ms),
            "sliceMedianSpread": stability.median_spread, "latenciesMs": list(timing.latencies_ms)}


def target_json(result: TargetResult, batch: int) -> dict[str, Any]:
    return {
        "name": result.target.name,
        "backend": result.target.backend.value,
        "precision": result.target.precision.value,
        "status": "Succeeded" if result.succeeded else "Failed",
        "reason": result.reason.value,
        "message": result.message,
        "compileSeconds": result.compile_seconds,
        "cacheHit": result.cache_hit,
        "accuracy": asdict(result.accuracy) if result.accuracy else None,
        "top1Drop": result.accuracy.top1_drop if result.accuracy else None,
        "withinBudget": result.verdict.within_budget if result.verdict else None,
        "budgetViolations": list(result.verdict.reasons) if result.verdict else [],
        "speedup": result.speedup(batch),
        "speedupByBatch": {str(b): result.speedup(b) for b in result.timings},
        "speedupStable": not result.speedup_doubts(batch),
        "unstableSpeedups": {str(b): list(result.speedup_doubts(b)) for b in result.timings
                             if result.speedup_doubts(b)},
        "timings": [timing_json(t) for t in result.timings.values()],
        "baselineTimings": [timing_json(t) for t in result.baseline_timings.values()],
        "calibration": result.calibration,
        "build": result.details,
        "artifact": {"uri": str(result.published.uri), "manifestSha256": result.published.manifest_sha256,
                     "size": result.published.size} if result.published else None,
        "run": {"id": result.run.run_id, "uri": str(result.run.uri), "version": result.run.version,
                "current": result.current} if result.run else None,
    }


def build_report(results: list[TargetResult], *, name: str, model: dict[str, Any], baseline: str,
                 device: str, versions: dict[str, str], batch: int, objective: str,
                 best: str | None, budget: AccuracyBudget) -> dict[str, Any]:
    return {
        "kubeopt": __version__,
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "name": name,
        "device": device,
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "versions": versions,
        "model": model,
        "baseline": baseline,
        "selection": {"objective": objective, "batchSize": batch, "best": best},
        "budget": {"maxTop1Drop": budget.max_top1_drop, "maxRelativeError": budget.max_relative_error},
        "unstableTimingRule": UNSTABLE_RULE,
        "targets": [target_json(r, batch) for r in results],
    }


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def _cell(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "-" if value is None else significant(value, digits) + suffix


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _speedup_cell(speedup: float | None, doubts: list[str]) -> str:
    if speedup is None:
        return "-"
    if not doubts:
        return f"{significant(speedup)}x"
    return (f'<span class="unstable" title="{html.escape("; ".join(doubts))}">{significant(speedup)}x '
            "! unstable</span>")


def _summary_rows(report: dict[str, Any]) -> str:
    """One row per target at the selection batch size."""
    batch = report["selection"]["batchSize"]
    rows = []
    for t in report["targets"]:
        at = {x["batchSize"]: x for x in t["timings"]}.get(batch, {})
        acc = t["accuracy"] or {}
        status = t["status"] + ("" if t["reason"] == "Succeeded" else f" ({html.escape(t['reason'])})")
        cells = (html.escape(t["name"]), t["backend"], t["precision"], status, _cell(at.get("throughput")),
                 _cell(at.get("p50Ms")), _cell(at.get("p99Ms")),
                 _speedup_cell(t["speedup"], t["unstableSpeedups"].get(str(batch), [])),
                 _cell(acc.get("relative_error")), _fraction(acc.get("top1_agreement")),
                 _fraction(acc.get("accuracy")), _cell(t["compileSeconds"]),
                 html.escape(t["artifact"]["uri"]) if t["artifact"] else "-")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if t["message"]:
            rows.append(f'<tr><td></td><td colspan="12" class="msg">{html.escape(t["message"])}</td></tr>')
    return "".join(rows)


def _timing_rows(report: dict[str, Any]) -> str:
    """One row per target (and the baseline) and batch size, with the figures the stability rule reads."""
    series: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = []
    with_baseline = next((t for t in report["targets"] if t["baselineTimings"]), None)
    if with_baseline is not None:
        series.append(("baseline", with_baseline["baselineTimings"], {}))
    series += [(t["name"], t["timings"], t) for t in report["targets"] if t["timings"]]
    rows = []
    for name, timings, target in series:
        for x in timings:
            key = str(x["batchSize"])
            speedup = _speedup_cell(target["speedupByBatch"].get(key), target["unstableSpeedups"].get(key, [])) \
                if target else "1x"
            reasons = html.escape("; ".join(x["unstableReasons"]))
            stable = "yes" if x["stable"] else f'<span class="unstable">no: {reasons}</span>'
            spread = x["sliceMedianSpread"]
            cells = (html.escape(name), key, _cell(x["throughput"]), _cell(x["p50Ms"]), _cell(x["p99Ms"]),
                     _cell(x["p99OverP50"]), "-" if spread is None else f"{spread:.1%}", speedup, stable)
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(rows)


def render_html(report: dict[str, Any]) -> str:
    batch = report["selection"]["batchSize"]
    calibration = [t for t in report["targets"] if t["calibration"]]
    calib_html = "".join(
        f"<li><b>{html.escape(t['name'])}</b>: <code>{html.escape(json.dumps(t['calibration']))}</code></li>"
        for t in calibration) or "<li>No int8 targets.</li>"
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    unstable = any(t["unstableSpeedups"] for t in report["targets"])
    note = (f'<p class="unstable">! unstable timing: {html.escape(report["unstableTimingRule"])}. Do not trust '
            "that speedup; re-run on an idle machine or raise benchmark.iterations.</p>") if unstable else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kubeopt report: {html.escape(report['name'])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d1d5db;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.msg{{text-align:left;color:#b91c1c}}.unstable{{color:#b45309;font-weight:bold}}h2{{margin-top:1.6em}}
svg.chart{{display:block;max-width:none}}</style></head><body>
<h1>kubeopt report: {html.escape(report['name'])}</h1>
<p>Device: <b>{html.escape(report['device'])}</b>. Versions: {html.escape(versions)}.<br>
Baseline: {html.escape(report['baseline'])}, measured in the same process on the same device.
Selection: {report['selection']['objective']} at batch {batch}; best:
<b>{html.escape(str(report['selection']['best'] or 'none within the accuracy budget'))}</b>.</p>
<table><tr><th>target</th><th>backend</th><th>precision</th><th>status</th><th>samples/s</th><th>p50 ms</th>
<th>p99 ms</th><th>speedup</th><th>rel. error</th><th>top-1 agree</th><th>accuracy</th><th>compile s</th>
<th>artifact</th></tr>{_summary_rows(report)}</table>{note}
<h2>Speedup over the baseline per batch size</h2>
<p>Bars start at 1x (the baseline); right of it is faster. Dashed: an unstable timing.</p>
{speedup_chart(report)}
<h2>Latency per batch size</h2>
<p>Log axis, one panel per batch size. Line: min to max; box: p50 to p99; tick: p50. ! marks an unstable
timing.</p>{latency_chart(report)}
<h2>Accuracy: the drop against the budget</h2>
<p>Green: within the budget (dashed line); red: over it.</p>{accuracy_chart(report)}
<h2>Timings per batch size</h2>
<table><tr><th>measured</th><th>batch</th><th>samples/s</th><th>p50 ms</th><th>p99 ms</th><th>p99/p50</th>
<th>slice medians apart</th><th>speedup</th><th>stable</th></tr>{_timing_rows(report)}</table>
<p>Stable unless {html.escape(report['unstableTimingRule'])}.</p>
<h2>Calibration provenance</h2><ul>{calib_html}</ul>
</body></html>
"""
