"""Unstable timings are flagged: in the timing itself, report.json, the terminal table and report.html.

The rule is checked on exact timings made from a schedule; one test shows it on timings the
benchmark measured from a runner that really sleeps.
"""

from __future__ import annotations

import json

import pytest

from kubeopt.worker import report
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.table import UNSTABLE_MARK, render_table
from tests.worker.timed_results import drifting, measured, report_of, spiky, steady, time_for_real, time_schedule


@pytest.fixture(scope="module")
def stable() -> dict[int, BatchTiming]:
    return time_schedule(steady(25.0))


@pytest.fixture(scope="module")
def baseline() -> dict[int, BatchTiming]:
    return time_schedule(steady(40.0))


@pytest.fixture(scope="module")
def noisy() -> dict[int, BatchTiming]:
    return time_schedule(spiky(3.0))


@pytest.fixture(scope="module")
def drifted() -> dict[int, BatchTiming]:
    return time_schedule(drifting(20.0))


def test_a_steady_runner_times_as_stable(stable: dict[int, BatchTiming]) -> None:
    for timing in stable.values():
        assert timing.stability.stable, timing.stability.reasons
        assert len(timing.stability.slice_medians_ms) == 5
        assert timing.stability.tail_ratio < 2


def test_a_runner_that_sometimes_sleeps_ten_times_longer_is_unstable_by_its_tail(
        noisy: dict[int, BatchTiming]) -> None:
    for timing in noisy.values():
        assert not timing.stability.stable
        assert any(reason.startswith("p99/p50") for reason in timing.stability.reasons)


def test_a_runner_that_slows_down_halfway_is_unstable_by_its_slice_medians(drifted: dict[int, BatchTiming]) -> None:
    for timing in drifted.values():
        assert timing.stability.tail_ratio < 2  # the tail alone would not have caught it
        assert [r for r in timing.stability.reasons if "slices" in r], timing.stability


def test_a_measured_runner_that_sometimes_sleeps_ten_times_longer_is_flagged_by_its_tail() -> None:
    for timing in time_for_real(spiky(3.0)).values():
        assert not timing.stability.stable
        assert any(reason.startswith("p99/p50") for reason in timing.stability.reasons)


def test_too_few_iterations_to_slice_skip_the_median_check_but_keep_the_tail_check() -> None:
    timing = BatchTiming(1, 4, (1.0, 1.0, 1.0, 9.0))

    assert timing.stability.slice_medians_ms == ()
    assert timing.stability.median_spread is None
    assert not timing.stability.stable


def test_report_json_marks_the_unstable_speedup_and_the_timing_behind_it(
        stable: dict[int, BatchTiming], noisy: dict[int, BatchTiming], baseline: dict[int, BatchTiming]) -> None:
    results = [measured("steady", stable, baseline), measured("noisy", noisy, baseline)]

    targets = {t["name"]: t for t in json.loads(report.render_json(report_of(results)))["targets"]}

    assert targets["steady"]["speedupStable"] is True and targets["steady"]["unstableSpeedups"] == {}
    assert targets["noisy"]["speedupStable"] is False
    assert set(targets["noisy"]["unstableSpeedups"]) == {"1", "8"}
    assert targets["noisy"]["unstableSpeedups"]["8"][0].startswith("target p99/p50")
    assert all(t["stable"] is False and t["unstableReasons"] for t in targets["noisy"]["timings"])
    assert all(t["stable"] is True for t in targets["steady"]["timings"])


def test_an_unstable_baseline_casts_doubt_on_every_speedup_made_from_it(
        stable: dict[int, BatchTiming], noisy: dict[int, BatchTiming]) -> None:
    result = measured("steady", stable, noisy)

    assert result.speedup_doubts(8) and all(d.startswith("baseline ") for d in result.speedup_doubts(8))


def test_the_table_marks_an_unstable_speedup_and_explains_it_in_a_footnote(
        stable: dict[int, BatchTiming], noisy: dict[int, BatchTiming], baseline: dict[int, BatchTiming]) -> None:
    table = render_table([measured("steady", stable, baseline), measured("noisy", noisy, baseline)], None)
    lines = table.splitlines()

    first = next(i for i, line in enumerate(lines) if line.startswith("noisy"))
    steady = next(i for i, line in enumerate(lines) if line.startswith("steady"))
    assert all(f"x{UNSTABLE_MARK}" in row for row in lines[first:first + 2])  # batch 1 and batch 8
    assert all(f"x{UNSTABLE_MARK}" not in row for row in lines[steady:steady + 2])
    assert any(line.startswith(f"{UNSTABLE_MARK} unstable timing (p99/p50 > 2") for line in lines)
    assert any(line.startswith(f"{UNSTABLE_MARK} noisy batch 8: target p99/p50") for line in lines)


def test_a_table_of_stable_timings_has_no_marker_and_no_footnote(
        stable: dict[int, BatchTiming], baseline: dict[int, BatchTiming]) -> None:
    table = render_table([measured("steady", stable, baseline)], "steady")

    assert "unstable" not in table
    assert f"x{UNSTABLE_MARK}" not in table


def test_report_html_marks_the_unstable_speedup_in_the_table_and_the_charts(
        stable: dict[int, BatchTiming], noisy: dict[int, BatchTiming], baseline: dict[int, BatchTiming]) -> None:
    page = report.render_html(report_of([measured("steady", stable, baseline), measured("noisy", noisy, baseline)]))

    assert page.count("! unstable</span>") >= 2  # the summary table at batch 8 and the per-batch table
    assert "x ! unstable</text>" in page  # the speedup chart's value column
    assert ">noisy !</text>" in page  # the latency chart's row label
    assert "stroke-dasharray=\"3 2\"" in page  # the unstable speedup's bar is drawn dashed
    assert "! unstable timing: p99/p50 above 2" in page
