"""report.html reads at a glance: measured precision, log latency axes per batch size, accuracy as the drop
against the budget line, speedup per batch size. Made from real timings (sleeping runners) and accuracy
compared by the validate module; the charts are read back as XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from kubeopt.api.spec import AccuracyBudget
from kubeopt.worker import report
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.charts import significant
from kubeopt.worker.results import TargetResult
from tests.worker.timed_results import measured, report_of, steady, time_schedule

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def timings() -> dict[str, dict[int, BatchTiming]]:
    return {"fast": time_schedule(steady(0.3)), "base": time_schedule(steady(3.0)),
            "outlier": time_schedule(steady(150.0))}


def _chart(page: str, label: str) -> ET.Element:
    found = re.search(rf'<svg class="chart"[^>]*aria-label="{label}".*?</svg>', page, re.S)
    assert found, label
    return ET.fromstring(found.group(0).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def _texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


@pytest.mark.parametrize(("value", "text"), [(2.04e-07, "2.04e-07"), (0.0123, "0.0123"), (12.34, "12.3"),
                                             (1234.5, "1,234"), (0.5, "0.500"), (0.0, "0"), (None, "-")])
def test_numbers_keep_their_significant_digits(value: float | None, text: str) -> None:
    assert significant(value) == text


def test_a_tiny_relative_error_is_printed_as_measured_not_as_zero(timings: dict[str, dict[int, BatchTiming]]) -> None:
    result = measured("ort-fp32", timings["fast"], timings["base"], noise=1e-7)
    assert result.accuracy is not None and 0 < result.accuracy.relative_error < 1e-6

    page = report.render_html(report_of([result]))

    assert f"<td>{result.accuracy.relative_error:.2e}</td>" in page  # as the terminal table prints it
    assert "0.00000" not in page


def test_a_slow_outlier_leaves_every_other_target_readable_on_a_log_axis_with_decade_ticks(
        timings: dict[str, dict[int, BatchTiming]]) -> None:
    results = [measured("fast", timings["fast"], timings["base"]),
               measured("outlier", timings["outlier"], timings["base"])]

    svg = _chart(report.render_html(report_of(results)), "latency per batch size")

    texts = _texts(svg)
    assert [t for t in texts if t.startswith("batch ")] == ["batch 1 (ms, log axis)", "batch 8 (ms, log axis)"]
    assert {"0.1", "1", "10", "100", "1000"} <= set(texts)  # decades from the fast target to the outlier
    boxes = [float(r.get("width", 0)) for r in svg.iter(f"{SVG}rect")]
    assert min(boxes) >= 1.5  # the fastest target's p50..p99 box is still drawn, not flattened to nothing
    ticks = sorted({float(line.get("x1", 0)) for line in svg.iter(f"{SVG}line") if line.get("stroke") == "#e5e7eb"})
    assert ticks[1] - ticks[0] > 50  # a decade is a readable distance
    baseline_p50, fast_p50, outlier_p50 = [float(line.get("x1", 0)) for line in svg.iter(f"{SVG}line")
                                           if line.get("stroke") == "#111"][:3]  # batch 1's panel
    assert fast_p50 < baseline_p50 - 80 < outlier_p50 - 160  # 0.3 ms, 3 ms and 150 ms far apart


def test_accuracy_is_drawn_as_the_drop_against_the_budget_line(timings: dict[str, dict[int, BatchTiming]]) -> None:
    budget = AccuracyBudget(max_top1_drop=0.01, max_relative_error=0.05)
    half = measured("half-point", timings["fast"], timings["base"], flip=1, budget=budget)  # 1 of 200: 0.5 pp
    over = measured("over", timings["fast"], timings["base"], flip=4, budget=budget)  # 2 pp
    assert half.accuracy and half.accuracy.top1_drop == pytest.approx(0.005)

    svg = _chart(report.render_html(report_of([half, over], budget)), "accuracy drop against the budget")

    texts = _texts(svg)
    assert "0.500 pp" in texts and "2.00 pp (over budget)" in texts and "budget 1.00 pp" in texts
    budget_x = next(float(line.get("x1", 0)) for line in svg.iter(f"{SVG}line") if line.get("stroke") == "#dc2626")
    bars = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "mark"]
    start = float(bars[0].get("x", 0))
    assert float(bars[0].get("width", 0)) == pytest.approx((budget_x - start) / 2, abs=1.0)  # half the budget
    assert float(bars[1].get("width", 0)) == pytest.approx((budget_x - start) * 2, abs=1.0)
    assert bars[0].get("fill") == "#16a34a" and bars[1].get("fill") == "#dc2626"


def test_speedup_is_drawn_per_batch_size_against_the_baseline(timings: dict[str, dict[int, BatchTiming]]) -> None:
    result = measured("fast", timings["fast"], timings["base"])

    svg = _chart(report.render_html(report_of([result])), "speedup over the baseline per batch size")

    texts = _texts(svg)
    assert [t for t in texts if t.startswith("batch ")] == ["batch 1", "batch 8"]
    for batch in (1, 8):
        assert any(t.startswith(f"{significant(result.speedup(batch))}x") for t in texts)  # "! unstable" may follow
    assert "1x = the baseline" in texts


def test_a_failed_target_without_timings_leaves_the_charts_to_the_others(
        timings: dict[str, dict[int, BatchTiming]]) -> None:
    from kubeopt.api.reasons import Reason
    from tests.worker.timed_results import target

    failed = TargetResult(target("broken"), Reason.BUILD_FAILED, "no such op")
    page = report.render_html(report_of([failed, measured("fast", timings["fast"], timings["base"])]))

    assert page.count('<svg class="chart"') == 3
    assert "Failed (BuildFailed)" in page and "no such op" in page
