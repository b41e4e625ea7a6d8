from __future__ import annotations

import numpy as np

from kubeopt.api.spec import AccuracyBudget, Objective, Selection, Target, Task
from kubeopt.worker.benchmark import BatchTiming
from kubeopt.worker.results import TargetResult
from kubeopt.worker.select import choose_best, selection_batch
from kubeopt.worker.validate import compare, judge


def test_identical_outputs_have_zero_error_and_full_agreement() -> None:
    logits = [np.eye(4, dtype=np.float32)]

    accuracy = compare(logits, logits, np.arange(4), Task.CLASSIFICATION)

    assert accuracy.relative_error == 0.0
    assert accuracy.top1_agreement == 1.0
    assert accuracy.accuracy == accuracy.baseline_accuracy == 1.0


def test_flipped_prediction_lowers_agreement_and_accuracy() -> None:
    base = [np.eye(4, dtype=np.float32)]
    target = [np.eye(4, dtype=np.float32)[[0, 1, 2, 0]]]

    accuracy = compare(base, target, np.arange(4), Task.CLASSIFICATION)

    assert accuracy.top1_agreement == 0.75
    assert accuracy.accuracy == 0.75
    assert accuracy.top1_drop == 0.25


def test_judge_rejects_a_drop_over_the_budget_and_says_why() -> None:
    base = [np.eye(4, dtype=np.float32)]
    target = [np.eye(4, dtype=np.float32)[[0, 1, 2, 0]]]
    accuracy = compare(base, target, None, Task.CLASSIFICATION)

    verdict = judge(accuracy, AccuracyBudget(max_top1_drop=0.1, max_relative_error=10.0))

    assert not verdict.within_budget
    assert verdict.reasons == ("top-1 drop 0.2500 > budget 0.1000",)


def test_nan_outputs_are_never_within_budget() -> None:
    accuracy = compare([np.ones((2, 2), np.float32)], [np.full((2, 2), np.nan, np.float32)], None, Task.GENERIC)

    assert not judge(accuracy, AccuracyBudget()).within_budget


def result(name: str, throughput_ms: float, within: bool = True) -> TargetResult:
    from kubeopt.worker.validate import Accuracy, Verdict

    timing = {8: BatchTiming(8, 3, (throughput_ms,) * 3)}
    return TargetResult(Target(name=name, backend="onnxruntime"), accuracy=Accuracy(1, 0, 0, None, None, None),
                        verdict=Verdict(within, ()), timings=timing, baseline_timings=timing)


def test_best_is_the_fastest_target_inside_the_budget() -> None:
    results = [result("slow", 4.0), result("fast-but-wrong", 1.0, within=False), result("fast", 2.0)]

    best = choose_best(results, Selection(objective=Objective.THROUGHPUT), [8])

    assert best is not None and best.target.name == "fast"


def test_no_target_inside_the_budget_means_no_best() -> None:
    assert choose_best([result("wrong", 1.0, within=False)], Selection(), [8]) is None


def test_selection_batch_defaults_to_largest_for_throughput_and_smallest_for_latency() -> None:
    assert selection_batch(Selection(objective=Objective.THROUGHPUT), [1, 8, 32]) == 32
    assert selection_batch(Selection(objective=Objective.LATENCY), [1, 8, 32]) == 1
    assert selection_batch(Selection(objective=Objective.LATENCY, batch_size=8), [1, 8, 32]) == 8
