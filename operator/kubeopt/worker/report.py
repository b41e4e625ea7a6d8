"""Reports: report.json (every figure) and report.html (tables and inline SVG charts).

The HTML needs no network and no JavaScript: charts are drawn as SVG here, so the report
opens anywhere, including from an object store's console.
"""

from __future__ import annotations

import html
import json
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from kubeopt import __version__
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.results import TargetResult

COLORS = ["#6b7280", "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"]


def timing_json(timing: BatchTiming) -> dict[str, Any]:
    return {"batchSize": timing.batch_size, "iterations": timing.iterations, "throughput": timing.throughput,
            "p50Ms": timing.p50_ms, "p90Ms": timing.p90_ms, "p99Ms": timing.p99_ms,
            "minMs": min(timing.latencies_ms), "maxMs": max(timing.latencies_ms),
            "latenciesMs": list(timing.latencies_ms)}


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
        "withinBudget": result.verdict.within_budget if result.verdict else None,
        "budgetViolations": list(result.verdict.reasons) if result.verdict else [],
        "speedup": result.speedup(batch),
        "speedupByBatch": {str(b): result.speedup(b) for b in result.timings},
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
                 best: str | None) -> dict[str, Any]:
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
        "targets": [target_json(r, batch) for r in results],
    }


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return html.escape(str(value))


def _throughput_chart(report: dict[str, Any]) -> str:
    """Grouped bars: baseline and each target's samples/s per batch size."""
    targets = [t for t in report["targets"] if t["timings"]]
    if not targets:
        return "<p>No timings.</p>"
    batches = sorted({t["batchSize"] for tt in targets for t in tt["timings"]})
    series = [("baseline", {t["batchSize"]: t["throughput"] for t in targets[0]["baselineTimings"]})]
    series += [(t["name"], {x["batchSize"]: x["throughput"] for x in t["timings"]}) for t in targets]
    peak = max(v for _, values in series for v in values.values()) or 1.0
    width, height, left, bottom = 720, 280, 70, 40
    group = (width - left - 10) / len(batches)
    bar = group * 0.8 / len(series)
    parts = [f'<svg viewBox="0 0 {width} {height + 20 * len(series)}" width="{width}" role="img" '
             'aria-label="throughput per batch size">',
             '<text x="4" y="12" font-size="11">samples/s</text>']
    for tick in range(5):
        value = peak * tick / 4
        y = height - bottom - (height - bottom - 24) * tick / 4
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{value:,.0f}</text>')
    for gi, batch in enumerate(batches):
        x0 = left + gi * group + group * 0.1
        for si, (label, values) in enumerate(series):
            value = values.get(batch, 0.0)
            h = (height - bottom - 24) * value / peak
            parts.append(f'<rect x="{x0 + si * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar * 0.9:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS[si % len(COLORS)]}"><title>{html.escape(label)} '
                         f'batch {batch}: {value:,.1f}/s</title></rect>')
        parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{height - bottom + 16}" font-size="12" '
                     f'text-anchor="middle">batch {batch}</text>')
    for si, (label, _) in enumerate(series):
        y = height + 4 + 20 * si
        parts.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{COLORS[si % len(COLORS)]}"/>'
                     f'<text x="{left + 18}" y="{y + 11}" font-size="12">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _latency_chart(report: dict[str, Any]) -> str:
    """Box-and-whisker rows (min, p50, p90, p99, max) at the selection batch size."""
    batch = report["selection"]["batchSize"]
    rows: list[tuple[str, dict[str, Any]]] = []
    for target in report["targets"]:
        if not rows:
            rows += [("baseline", t) for t in target["baselineTimings"] if t["batchSize"] == batch]
        rows += [(target["name"], t) for t in target["timings"] if t["batchSize"] == batch]
    if not rows:
        return "<p>No timings at the selection batch size.</p>"
    peak = max(t["maxMs"] for _, t in rows) or 1.0
    width, left, row_h = 720, 150, 28

    def x(ms: float) -> float:
        return left + (width - left - 20) * ms / peak

    parts = [f'<svg viewBox="0 0 {width} {row_h * len(rows) + 30}" width="{width}" role="img" '
             f'aria-label="latency distribution at batch {batch}">']
    for i, (label, t) in enumerate(rows):
        y = 10 + i * row_h
        color = COLORS[i % len(COLORS)]
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" font-size="12" text-anchor="end">{html.escape(label)}</text>'
            f'<line x1="{x(t["minMs"]):.1f}" x2="{x(t["maxMs"]):.1f}" y1="{y + 10}" y2="{y + 10}" stroke="{color}"/>'
            f'<rect x="{x(t["p50Ms"]):.1f}" y="{y + 2}" width="{max(x(t["p99Ms"]) - x(t["p50Ms"]), 1):.1f}" '
            f'height="16" fill="{color}" opacity="0.5"><title>p50 {t["p50Ms"]:.3f} ms, p90 {t["p90Ms"]:.3f}, '
            f'p99 {t["p99Ms"]:.3f}</title></rect>'
            f'<line x1="{x(t["p50Ms"]):.1f}" x2="{x(t["p50Ms"]):.1f}" y1="{y}" y2="{y + 20}" stroke="#111" '
            'stroke-width="2"/>')
    axis_y = 10 + len(rows) * row_h
    parts.append(f'<text x="{left}" y="{axis_y + 12}" font-size="11">0 ms</text>'
                 f'<text x="{width - 20}" y="{axis_y + 12}" font-size="11" text-anchor="end">{peak:.2f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _accuracy_chart(report: dict[str, Any]) -> str:
    """Bars of top-1 agreement (and accuracy with labels) per target."""
    rows = [(t["name"], t["accuracy"]) for t in report["targets"] if t["accuracy"]]
    rows = [(n, a) for n, a in rows if a.get("top1_agreement") is not None]
    if not rows:
        return "<p>No classification metrics (model.task is generic); see relative errors in the table.</p>"
    base = next((a["baseline_accuracy"] for _, a in rows if a.get("baseline_accuracy") is not None), None)
    if base is not None:  # the FP32 baseline's own accuracy, for reference, as the first bar
        rows.insert(0, ("baseline", {"top1_agreement": None, "accuracy": base}))
    width, left, row_h = 760, 230, 24
    parts = [f'<svg viewBox="0 0 {width} {row_h * len(rows) * 2 + 20}" width="{width}" role="img" '
             'aria-label="accuracy">']
    y = 6
    for name, accuracy in rows:
        for label, value, color in (("agreement", accuracy["top1_agreement"], COLORS[1]),
                                    ("accuracy", accuracy.get("accuracy"), COLORS[2])):
            if value is None:
                continue
            w = (width - left - 70) * value
            parts.append(f'<text x="{left - 8}" y="{y + 14}" font-size="12" text-anchor="end">'
                         f'{html.escape(name)} {label}</text><rect x="{left}" y="{y + 2}" width="{w:.1f}" '
                         f'height="16" fill="{color}"/><text x="{left + w + 6:.1f}" y="{y + 14}" '
                         f'font-size="12">{value * 100:.2f}%</text>')
            y += row_h
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    batch = report["selection"]["batchSize"]
    rows = []
    for t in report["targets"]:
        at = {x["batchSize"]: x for x in t["timings"]}.get(batch, {})
        acc = t["accuracy"] or {}
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(t["name"]), t["backend"], t["precision"], t["status"] + (
                    "" if t["reason"] == "Succeeded" else f" ({html.escape(t['reason'])})"),
                _fmt(at.get("throughput")), _fmt(at.get("p50Ms"), 3), _fmt(at.get("p99Ms"), 3),
                _fmt(t["speedup"], 2) + ("x" if t["speedup"] else ""), _fmt(acc.get("relative_error"), 5),
                _fmt(acc.get("top1_agreement"), 4), _fmt(acc.get("accuracy"), 4), _fmt(t["compileSeconds"], 1),
                html.escape(t["artifact"]["uri"]) if t["artifact"] else "-")) + "</tr>")
        if t["message"]:
            rows.append(f'<tr><td></td><td colspan="12" class="msg">{html.escape(t["message"])}</td></tr>')
    calibration = [t for t in report["targets"] if t["calibration"]]
    calib_html = "".join(
        f"<li><b>{html.escape(t['name'])}</b>: <code>{html.escape(json.dumps(t['calibration']))}</code></li>"
        for t in calibration) or "<li>No int8 targets.</li>"
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kubeopt report: {html.escape(report['name'])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d1d5db;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.msg{{text-align:left;color:#b91c1c}}h2{{margin-top:1.6em}}</style></head><body>
<h1>kubeopt report: {html.escape(report['name'])}</h1>
<p>Device: <b>{html.escape(report['device'])}</b>. Versions: {html.escape(versions)}.<br>
Baseline: {html.escape(report['baseline'])}, measured in the same process on the same device.
Selection: {report['selection']['objective']} at batch {batch}; best:
<b>{html.escape(str(report['selection']['best'] or 'none within the accuracy budget'))}</b>.</p>
<table><tr><th>target</th><th>backend</th><th>precision</th><th>status</th><th>samples/s</th><th>p50 ms</th>
<th>p99 ms</th><th>speedup</th><th>rel. error</th><th>top-1 agree</th><th>accuracy</th><th>compile s</th>
<th>artifact</th></tr>{''.join(rows)}</table>
<h2>Throughput per batch size (baseline vs targets)</h2>{_throughput_chart(report)}
<h2>Latency distribution at batch {batch}</h2>
<p>Line: min to max; box: p50 to p99; bar: p50.</p>{_latency_chart(report)}
<h2>Accuracy against the FP32 baseline</h2>{_accuracy_chart(report)}
<h2>Calibration provenance</h2><ul>{calib_html}</ul>
</body></html>
"""
