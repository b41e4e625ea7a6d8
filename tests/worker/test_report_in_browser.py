"""report.html, laid out by a real browser: every chart drawn, no label cut off, and the check can fail.

The report is made from real TargetResults: timings measured by the benchmark on sleeping runners
(one unstable on purpose), accuracy compared and judged by the validate module, one target over
its budget, one with the longest name a target may have (in wide letters), and one whose relative error
puts thirteen decades on the log axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeopt.worker import report
from tests.worker.browser import measure_charts
from tests.worker.timed_results import measured, report_of, spiky, steady, time_schedule

CHARTS = ["speedup over the baseline per batch size", "latency per batch size", "accuracy drop against the budget"]


@pytest.fixture(scope="module")
def page() -> str:
    base, fast, noisy = time_schedule(steady(40.0)), time_schedule(steady(2.0)), time_schedule(spiky(0.5))
    results = [measured("ort-fp32", fast, base),
               measured("compile-int8-mmmmmmmmmmwwwwwww", noisy, base, flip=1, noise=2e-3, precision="int8"),
               measured("over-budget", fast, base, flip=6, noise=0.3),
               measured("near-exact", fast, base, noise=1e-12)]  # thirteen decades of relative error
    return report.render_html(report_of(results))


def _checked(page: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {chart["label"]: chart for chart in measure_charts(page, tmp_path)}


def test_every_chart_is_drawn_with_a_mark_per_row(page: str, tmp_path: Path) -> None:
    charts = _checked(page, tmp_path)

    assert list(charts) == CHARTS
    assert charts[CHARTS[0]]["marks"] >= 4 * 2  # four targets at two batch sizes
    assert charts[CHARTS[1]]["marks"] >= 5 * 2 * 3  # baseline and four targets, two batches, three marks each
    assert charts[CHARTS[2]]["marks"] >= 4 + 4 * 2 + 2  # drop bars, error line and dot, two budget lines
    assert all(chart["width"] > 300 and chart["height"] > 100 for chart in charts.values())


def test_no_chart_label_is_cut_off_or_overlaps_another(page: str, tmp_path: Path) -> None:
    charts = _checked(page, tmp_path)

    for chart in charts.values():
        assert chart["labels"] > 10
        assert chart["clipped"] == [], chart["label"]
        assert chart["overlapping"] == [], chart["label"]


def test_the_check_catches_a_label_pushed_outside_its_chart(page: str, tmp_path: Path) -> None:
    first = page.index('<svg class="chart"')
    inside = page.index(">", first) + 1
    broken = page[:inside] + '<text x="-40" y="30" font-size="12">cut-off-label</text>' + page[inside:]

    charts = _checked(broken, tmp_path)

    assert charts[CHARTS[0]]["clipped"] == ["cut-off-label"]


def test_the_check_catches_a_chart_with_nothing_drawn(page: str, tmp_path: Path) -> None:
    empty = '<svg class="chart" viewBox="0 0 400 100" width="400" aria-label="empty"><text x="10" y="20">x</text></svg>'

    charts = _checked(page.replace("</body>", empty + "</body>"), tmp_path)

    assert charts["empty"]["marks"] == 0
