"""The ModelOptimization status as pydantic models.

API conventions avoid floats in status, so measured figures are strings ("1234.5") or
integers. Conditions follow kstatus: Ready, Reconciling and Stalled, each with
observedGeneration, so Argo CD and Flux can read health.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class Condition(StatusModel):
    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="What happened, for a person.")
    observed_generation: int | None = Field(default=None, description="Generation this condition speaks of.")
    last_transition_time: str | None = Field(default=None, description="When the status last changed.")


class TargetMetrics(StatusModel):
    batch_size: int | None = Field(default=None, description="Batch size the figures are read at.")
    throughput: str | None = Field(default=None, description="Samples per second.")
    baseline_throughput: str | None = Field(default=None, description="Baseline samples per second.")
    latency_p50_ms: str | None = Field(default=None, description="Median latency in milliseconds.")
    latency_p99_ms: str | None = Field(default=None, description="99th percentile latency in milliseconds.")
    speedup: str | None = Field(default=None, description="Throughput over baseline, same run.")
    relative_error: str | None = Field(default=None, description="Output error relative to baseline.")
    top1_agreement: str | None = Field(default=None, description="Top-1 agreement with the baseline.")
    accuracy: str | None = Field(default=None, description="Top-1 accuracy with labels.")
    compile_seconds: str | None = Field(default=None, description="Build or compile time.")


class ArtifactStatus(StatusModel):
    uri: str = Field(description="Where the optimized model is.")
    sha256: str = Field(description="sha256 of its manifest.json.")
    size: int = Field(description="Bytes published.")
    run_id: str | None = Field(default=None, description="The run it was published by (<output>/<target>/runs/"
                               "<runId>/).")


class FailureStatus(StatusModel):
    reason: str = Field(description="Why the attempt failed, e.g. OOMKilled or StorageError.")
    message: str = Field(default="", description="Details for a person.")
    time: str | None = Field(default=None, description="When the attempt's worker stopped.")


class TargetStatus(StatusModel):
    name: str = Field(description="Target name.")
    phase: Phase = Field(default=Phase.PENDING, description="Pending, Running, Succeeded, Failed.")
    job_name: str | None = Field(default=None, description="The target's Job.")
    attempts: int = Field(default=0, description="Pods started for this target (attempts, the retries included).")
    start_time: str | None = Field(default=None, description="When the Job started.")
    completion_time: str | None = Field(default=None, description="When the Job finished.")
    cache_hit: bool | None = Field(default=None, description="Compiled from a stored cache.")
    reason: str | None = Field(default=None, description="Why it failed, e.g. AccuracyBudgetExceeded (the last "
                               "attempt).")
    message: str | None = Field(default=None, description="Details for a person (the last attempt).")
    first_failure: FailureStatus | None = Field(default=None, description="The first failed attempt, kept when "
                                                "later attempts fail differently or succeed.")
    metrics: TargetMetrics | None = Field(default=None, description="Measured figures.")
    artifact: ArtifactStatus | None = Field(default=None, description="The published artifact.")
    run_uri: str | None = Field(default=None, description="The last attempt's run location; a failed run holds "
                                "only its run.json and never becomes current.")


class Best(StatusModel):
    target: str = Field(description="The chosen target.")
    speedup: str | None = Field(default=None, description="Its speedup over the baseline.")
    artifact_uri: str | None = Field(default=None, description="Where its artifact is.")


class ModelOptimizationStatus(StatusModel):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    phase: Phase | None = Field(default=None, description="Summary for printing; read conditions instead.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling, Stalled.")
    targets: list[TargetStatus] = Field(default_factory=list, description="One entry per target.")
    best: Best | None = Field(default=None, description="Best target within the accuracy budget.")
    best_target: str | None = Field(default=None, description="Name of the best target (printer column).")
    best_speedup: str | None = Field(default=None, description="Its speedup (printer column).")
