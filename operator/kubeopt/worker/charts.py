"""The SVG charts of report.html: speedup per batch size, latency per batch size, accuracy against the budget.

Drawn here as plain SVG so the page needs no JavaScript and no network. Each chart is one
``<svg class="chart">`` of rows (a label column, a plot, a value column); its drawn marks carry
``class="mark"`` so a browser test can count them. Scales are chosen so no target flattens the
others: latency and relative error on log axes with decade ticks, one latency panel per batch
size with its own axis, speedup on a log axis around 1x, and top-1 drop on a linear axis that
always holds the budget line. Column widths come from the widest text, measured with per-character
advances a little above DejaVu Sans' (Debian's sans-serif, among the widest); the browser test
proves nothing is cut off, down to a 30-character target name in m and w.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

COLORS = ["#6b7280", "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"]
UNSTABLE_COLOR = "#b45309"
FONT_PX = 12
# Advances at 12 px, a little above DejaVu Sans' (m 11.7, w 9.8, lowercase ~7.3, digits 7.6, i/l 3.3).
WIDE, NARROW = set("mwMW@%"), set("ijlft.,:;'|!()[] -/")
WIDE_PX, UPPER_PX, NARROW_PX, CHAR_PX = 12.2, 9.6, 4.8, 8.0
PLOT_PX = 420
MAX_TICK_LABELS = 7  # 60 px apart at least: room for "0.0001" or "1e-12"
ROW_PX = 22
PAD = 8


def significant(value: float | None, digits: int = 3) -> str:
    """A number in the precision it carries: 2.04e-07, 0.0123, 12.3, 1,234 (never 0.00000)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 10 ** digits:
        return f"{value:,.0f}"
    if size < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:#.{digits}g}".rstrip(".")


def _text_px(text: str) -> float:
    """An upper bound of ``text``'s width in pixels at FONT_PX."""
    return sum(WIDE_PX if c in WIDE else NARROW_PX if c in NARROW else UPPER_PX if c.isupper() else CHAR_PX
               for c in text)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class Scale:
    """Maps values in [lo, hi] onto pixels [x0, x1], linearly or on a log axis."""

    lo: float
    hi: float
    x0: float
    x1: float
    log: bool

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.lo)
            share = (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            share = (value - self.lo) / (self.hi - self.lo)
        return self.x0 + (self.x1 - self.x0) * min(max(share, 0.0), 1.0)

    def ticks(self) -> list[float]:
        if not self.log:
            step = _nice_step((self.hi - self.lo) / 5)
            first = math.ceil(self.lo / step - 1e-9)
            return [i * step for i in range(first, math.floor(self.hi / step + 1e-9) + 1)]
        low, high = round(math.log10(self.lo)), round(math.log10(self.hi))
        multiples = (1, 2, 5) if high - low <= 2 else (1,)
        return [m * 10.0 ** e for e in range(low, high + 1) for m in multiples if m * 10.0 ** e <= self.hi * 1.0001]


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def log_scale(values: Sequence[float], x0: float, x1: float) -> Scale:
    """A log axis from the decade below the smallest positive value to the decade above the largest."""
    positive = [v for v in values if v > 0 and math.isfinite(v)] or [1.0]
    lo = 10.0 ** math.floor(math.log10(min(positive)))
    hi = 10.0 ** math.ceil(math.log10(max(positive)))
    return Scale(lo, hi if hi > lo else lo * 10, x0, x1, log=True)


def linear_scale(values: Sequence[float], x0: float, x1: float) -> Scale:
    """A linear axis holding 0 and every value, with a little room past the largest."""
    lo, hi = min(0.0, *values), max(0.0, *values)
    step = _nice_step((hi - lo) / 5 or 1.0)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi * 1.1 / step) * step if hi > 0 else step
    return Scale(lo, hi, x0, x1, log=False)


@dataclass(frozen=True)
class Row:
    """One row of a chart: its label, the marks drawn on the scale, the value text at the right."""

    label: str
    draw: Callable[[Scale, float], str]  # (scale, row top y) -> SVG marks
    value: str
    title: str = ""
    flagged: bool = False  # an unstable timing: the value is drawn in UNSTABLE_COLOR


@dataclass(frozen=True)
class Panel:
    heading: str
    rows: list[Row]
    scale_values: list[float]
    log: bool
    unit: str
    reference: tuple[float, str] | None = None  # a vertical line (1x, the budget) and its label


def _text(x: float, y: float, text: str, anchor: str = "start", color: str = "#111", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{FONT_PX}" text-anchor="{anchor}" fill="{color}"'
            f'{extra}>{_esc(text)}</text>')


def render_chart(label: str, panels: list[Panel], *, shared_axis: bool = False) -> str:
    """Panels stacked in one SVG; ``shared_axis``: one scale over every panel's values."""
    rows = [r for p in panels for r in p.rows]
    headings = [p.heading for p in panels]
    left = PAD + max(_text_px(r.label) for r in rows) + PAD
    tick_room = _text_px("0.0001 ms") / 2 + PAD
    x0, x1 = left + tick_room, left + tick_room + PLOT_PX
    value_x = x1 + tick_room
    references = [p.reference[1] for p in panels if p.reference]
    width = max(value_x + max(_text_px(r.value) for r in rows) + PAD,
                PAD + max(_text_px(h) for h in headings) + PAD,
                max((x0 + _text_px(t) for t in references), default=0.0) + PAD)
    shared = None
    if shared_axis:
        values = [v for p in panels for v in p.scale_values]
        shared = (log_scale if panels[0].log else linear_scale)(values, x0, x1)
    parts, y = [], PAD
    for panel in panels:
        scale = shared or (log_scale if panel.log else linear_scale)(panel.scale_values, x0, x1)
        parts.append(_text(PAD, y + FONT_PX, panel.heading, extra=' font-weight="bold"'))
        y += FONT_PX + 8
        top, bottom = y, y + ROW_PX * len(panel.rows)
        ticks = scale.ticks()
        every = math.ceil(len(ticks) / MAX_TICK_LABELS)  # many decades: a grid line each, a label every few
        for index, tick in enumerate(ticks):
            tx = scale(tick)
            parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{bottom}" stroke="#e5e7eb"/>')
            if index % every == 0:
                parts.append(_text(tx, bottom + FONT_PX + 2, f"{tick:g}{panel.unit}", "middle", "#4b5563"))
        if panel.reference is not None:
            rx = scale(panel.reference[0])
            parts.append(f'<line class="mark" x1="{rx:.1f}" x2="{rx:.1f}" y1="{top - 4}" y2="{bottom}" '
                         'stroke="#dc2626" stroke-dasharray="4 3"/>')
        for row in panel.rows:
            title = f"<title>{_esc(row.title)}</title>" if row.title else ""
            color = UNSTABLE_COLOR if row.flagged else "#111"
            parts.append(f"<g>{title}" + _text(left - PAD, y + 15, row.label, "end") + row.draw(scale, y)
                         + _text(value_x, y + 15, row.value, color=color) + "</g>")
            y += ROW_PX
        y = bottom + FONT_PX + 6
        if panel.reference is not None:
            parts.append(_text(x0, y + FONT_PX, panel.reference[1], color="#dc2626"))
            y += FONT_PX + 4
        y += 10
    return (f'<svg class="chart" viewBox="0 0 {width:.0f} {y:.0f}" width="{width:.0f}" height="{y:.0f}" '
            f'role="img" aria-label="{_esc(label)}" font-family="sans-serif">{"".join(parts)}</svg>')


def _bar(start: float, end: float, color: str, dashed: bool = False) -> Callable[[Scale, float], str]:
    def draw(scale: Scale, y: float) -> str:
        a, b = sorted((scale(start), scale(end)))
        style = f'fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-dasharray="3 2"' if dashed \
            else f'fill="{color}"'
        return f'<rect class="mark" x="{a:.1f}" y="{y + 4}" width="{max(b - a, 1.5):.1f}" height="14" {style}/>'
    return draw


def _box(t: dict[str, Any], color: str) -> Callable[[Scale, float], str]:
    """Whisker min..max, box p50..p99, a thick tick at p50."""
    def draw(scale: Scale, y: float) -> str:
        lo, hi, p50, p99 = scale(t["minMs"]), scale(t["maxMs"]), scale(t["p50Ms"]), scale(t["p99Ms"])
        return (f'<line class="mark" x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + 11}" y2="{y + 11}" stroke="{color}"/>'
                f'<rect class="mark" x="{p50:.1f}" y="{y + 4}" width="{max(p99 - p50, 1.5):.1f}" height="14" '
                f'fill="{color}" fill-opacity="0.45"/>'
                f'<line class="mark" x1="{p50:.1f}" x2="{p50:.1f}" y1="{y + 2}" y2="{y + 20}" stroke="#111" '
                'stroke-width="2"/>')
    return draw


def _unstable(timing: dict[str, Any]) -> bool:
    return not timing.get("stable", True)


def speedup_chart(report: dict[str, Any]) -> str:
    """Per batch size, each target's speedup over the baseline on one log axis around 1x."""
    targets = [t for t in report["targets"] if t["speedupByBatch"]]
    batches = sorted({int(b) for t in targets for b, v in t["speedupByBatch"].items() if v is not None})
    if not batches:
        return "<p>No speedups: no target was timed.</p>"
    panels = []
    for batch in batches:
        rows = []
        for index, target in enumerate(report["targets"]):
            speedup = target["speedupByBatch"].get(str(batch))
            if speedup is None:
                continue
            doubts = target["unstableSpeedups"].get(str(batch), [])
            rows.append(Row(target["name"], _bar(1.0, speedup, COLORS[(index + 1) % len(COLORS)], bool(doubts)),
                            f"{significant(speedup)}x" + (" ! unstable" if doubts else ""),
                            "; ".join(doubts), bool(doubts)))
        values = [1.0] + [target["speedupByBatch"][str(batch)] for target in targets
                          if target["speedupByBatch"].get(str(batch)) is not None]
        panels.append(Panel(f"batch {batch}", rows, values, log=True, unit="x"))
    last = panels[-1]
    panels[-1] = Panel(last.heading, last.rows, last.scale_values, True, "x", (1.0, "1x = the baseline"))
    return render_chart("speedup over the baseline per batch size", panels, shared_axis=True)


def latency_chart(report: dict[str, Any]) -> str:
    """One panel per batch size, its own log axis: min..max whisker, p50..p99 box, p50 tick."""
    series: list[tuple[str, list[dict[str, Any]]]] = []
    with_baseline = next((t for t in report["targets"] if t["baselineTimings"]), None)
    if with_baseline is not None:
        series.append(("baseline", with_baseline["baselineTimings"]))
    series += [(t["name"], t["timings"]) for t in report["targets"] if t["timings"]]
    batches = sorted({x["batchSize"] for _, timings in series for x in timings})
    if not batches:
        return "<p>No timings.</p>"
    panels = []
    for batch in batches:
        rows, values = [], []
        for index, (name, timings) in enumerate(series):
            timing = next((x for x in timings if x["batchSize"] == batch), None)
            if timing is None:
                continue
            flagged = _unstable(timing)
            values += [timing["minMs"], timing["maxMs"]]
            rows.append(Row(name + (" !" if flagged else ""), _box(timing, COLORS[index % len(COLORS)]),
                            f"p50 {significant(timing['p50Ms'])} ms, p99 {significant(timing['p99Ms'])}",
                            "; ".join(timing.get("unstableReasons", [])) or
                            f"min {significant(timing['minMs'])} ms, max {significant(timing['maxMs'])} ms",
                            flagged))
        panels.append(Panel(f"batch {batch} (ms, log axis)", rows, values, log=True, unit=""))
    return render_chart("latency per batch size", panels)


def accuracy_chart(report: dict[str, Any]) -> str:
    """The drop each target costs against the budget line: top-1 (percentage points) and relative error."""
    budget = report.get("budget") or {}
    measured = [t for t in report["targets"] if t["accuracy"]]
    if not measured:
        return "<p>No accuracy measured.</p>"
    panels = []
    drops = [t for t in measured if t["top1Drop"] is not None]
    if drops:
        limit = budget.get("maxTop1Drop")
        rows = []
        for target in drops:
            drop, over = target["top1Drop"] * 100, limit is not None and target["top1Drop"] > limit + 1e-12
            rows.append(Row(target["name"], _bar(0.0, drop, "#dc2626" if over else "#16a34a"),
                            f"{significant(drop)} pp" + (" (over budget)" if over else ""),
                            f"top-1 drop {significant(drop)} percentage points"))
        reference = (limit * 100, f"budget {significant(limit * 100)} pp") if limit is not None else None
        values = [r * 100 for r in [t["top1Drop"] for t in drops] + ([limit] if limit is not None else [])]
        panels.append(Panel("top-1 drop against the baseline (percentage points)", rows, values, False, "",
                            reference))
    limit = budget.get("maxRelativeError")
    rows = []
    for target in measured:
        error = target["accuracy"]["relative_error"]
        over = limit is not None and not error <= limit
        rows.append(Row(target["name"], _rel_error_mark(error, "#dc2626" if over else "#16a34a"),
                        significant(error) + (" (over budget)" if over else ""),
                        f"||target - baseline|| / ||baseline|| = {significant(error)}"))
    values = [t["accuracy"]["relative_error"] for t in measured] + ([limit] if limit is not None else [])
    panels.append(Panel("relative error against the baseline (log axis)", rows, values, True, "",
                        (limit, f"budget {significant(limit)}") if limit is not None else None))
    return render_chart("accuracy drop against the budget", panels)


def _rel_error_mark(error: float, color: str) -> Callable[[Scale, float], str]:
    def draw(scale: Scale, y: float) -> str:
        x = scale(error) if error > 0 and math.isfinite(error) else (scale.x1 if error else scale.x0)
        return (f'<line class="mark" x1="{scale.x0:.1f}" x2="{x:.1f}" y1="{y + 11}" y2="{y + 11}" stroke="{color}"/>'
                f'<circle class="mark" cx="{x:.1f}" cy="{y + 11}" r="5" fill="{color}"/>')
    return draw
