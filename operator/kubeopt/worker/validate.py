"""Compare a target's outputs with the FP32 baseline's and judge them against the budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubeopt.api.spec import AccuracyBudget, Task
from kubeopt.worker.data import Dataset
from kubeopt.worker.runners import Runner

VALIDATION_BATCH = 64


@dataclass(frozen=True)
class Accuracy:
    samples: int
    relative_error: float
    max_abs_error: float
    top1_agreement: float | None
    baseline_accuracy: float | None
    accuracy: float | None

    @property
    def top1_drop(self) -> float | None:
        """Accuracy lost against labels, else disagreement with the baseline's top-1."""
        if self.accuracy is not None and self.baseline_accuracy is not None:
            return self.baseline_accuracy - self.accuracy
        if self.top1_agreement is not None:
            return 1.0 - self.top1_agreement
        return None


@dataclass(frozen=True)
class Verdict:
    within_budget: bool
    reasons: tuple[str, ...]


def collect_outputs(runner: Runner, data: Dataset) -> list[np.ndarray]:
    """Run every sample through ``runner``; return each output concatenated over batches."""
    chunks: list[list[np.ndarray]] = []
    for feeds in data.batches(VALIDATION_BATCH):
        outputs = runner.run(feeds)
        if not chunks:
            chunks = [[] for _ in outputs]
        for index, output in enumerate(outputs):
            chunks[index].append(output.astype(np.float32, copy=False))
    return [np.concatenate(parts) for parts in chunks]


def compare(baseline: list[np.ndarray], target: list[np.ndarray], labels: np.ndarray | None,
            task: Task) -> Accuracy:
    """Relative error (||t-b|| / ||b||) and max abs error over all outputs; top-1 for classifiers."""
    if len(baseline) != len(target):
        raise ValueError(f"target returns {len(target)} outputs, the baseline {len(baseline)}")
    diff = np.sqrt(sum(float(np.sum((t.astype(np.float64) - b) ** 2)) for b, t in zip(baseline, target, strict=True)))
    norm = np.sqrt(sum(float(np.sum(b.astype(np.float64) ** 2)) for b in baseline))
    max_abs = max(float(np.max(np.abs(t - b))) if b.size else 0.0 for b, t in zip(baseline, target, strict=True))
    samples = len(baseline[0])
    agreement = base_acc = acc = None
    if task is Task.CLASSIFICATION:
        base_top1 = baseline[0].reshape(samples, -1).argmax(axis=1)
        target_top1 = target[0].reshape(samples, -1).argmax(axis=1)
        agreement = float(np.mean(base_top1 == target_top1))
        if labels is not None:
            base_acc = float(np.mean(base_top1 == labels[:samples]))
            acc = float(np.mean(target_top1 == labels[:samples]))
    relative = diff / norm if norm > 0 else float(diff)
    return Accuracy(samples, float(relative), max_abs, agreement, base_acc, acc)


def judge(accuracy: Accuracy, budget: AccuracyBudget) -> Verdict:
    """Inside the budget when relative error and top-1 drop are both at most their limits."""
    reasons = []
    if not np.isfinite(accuracy.relative_error) or accuracy.relative_error > budget.max_relative_error:
        reasons.append(f"relative error {accuracy.relative_error:.4g} > budget {budget.max_relative_error:.4g}")
    drop = accuracy.top1_drop
    if drop is not None and drop > budget.max_top1_drop + 1e-12:
        reasons.append(f"top-1 drop {drop:.4f} > budget {budget.max_top1_drop:.4f}")
    return Verdict(not reasons, tuple(reasons))
