"""The worker's termination message: the compact JSON summary the controller reads.

Kubernetes keeps at most 4096 bytes of a container's termination message, so the summary is
built to fit: per-batch figures are dropped first, then messages are shortened. The full
report lives next to the artifact in object storage.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from kubeopt.api.reasons import Reason

MAX_BYTES = 4096
SCHEMA_VERSION = 1


class ArtifactRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    uri: str
    sha256: str = Field(description="sha256 of the artifact's manifest.json.")
    size: int = Field(description="Bytes of all published files.")
    run_id: str | None = Field(default=None, description="The run the artifact belongs to.")


class TargetSummary(BaseModel):
    """One target's outcome, with figures at the selection batch size."""

    model_config = ConfigDict(frozen=True)
    name: str
    phase: str = Field(description="Succeeded or Failed.")
    reason: Reason = Reason.SUCCEEDED
    message: str = ""
    batch: int | None = None
    throughput: float | None = Field(default=None, description="Target samples/s at `batch`.")
    baseline_throughput: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    speedup: float | None = None
    relative_error: float | None = None
    top1_agreement: float | None = None
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    compile_seconds: float | None = None
    cache_hit: bool | None = None
    within_budget: bool | None = None
    throughput_by_batch: dict[str, float] | None = None
    artifact: ArtifactRef | None = None
    run_uri: str | None = Field(default=None, description="This run's location (its run.json), failed runs too.")


class Summary(BaseModel):
    model_config = ConfigDict(frozen=True)
    v: int = SCHEMA_VERSION
    status: str = Field(description="Succeeded or Failed.")
    reason: Reason
    message: str = ""
    device: str = ""
    targets: list[TargetSummary] = Field(default_factory=list)
    best: str | None = None
    report_uri: str | None = None


def encode(summary: Summary, limit: int = MAX_BYTES) -> str:
    """Return the summary as compact JSON of at most ``limit`` bytes.

    Detail goes in a fixed order (per-batch maps, then messages) until it fits; if even the
    bare summary is too large the target list is cut and the message says so.
    """
    text = _dump(summary)
    if len(text.encode()) <= limit:
        return text
    lean = [t.model_copy(update={"throughput_by_batch": None}) for t in summary.targets]
    summary = summary.model_copy(update={"targets": lean})
    text = _dump(summary)
    if len(text.encode()) <= limit:
        return text
    short = [t.model_copy(update={"message": t.message[:80]}) for t in summary.targets]
    summary = summary.model_copy(update={"targets": short, "message": summary.message[:200]})
    while len(_dump(summary).encode()) > limit and summary.targets:
        kept = summary.targets[:-1]
        summary = summary.model_copy(
            update={"targets": kept, "message": f"{summary.message[:150]} (summary truncated to {len(kept)} targets)"}
        )
    return _dump(summary)


def decode(text: str) -> Summary:
    """Parse a termination message; raises pydantic.ValidationError or ValueError when malformed."""
    return Summary.model_validate(json.loads(text))


def _dump(summary: Summary) -> str:
    return summary.model_dump_json(exclude_none=True, exclude_defaults=False)
