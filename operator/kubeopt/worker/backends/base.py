"""The backend protocol: what every backend consumes, builds and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from kubeopt.api.spec import BackendName, ModelOptimizationSpec, Target
from kubeopt.worker.data import Dataset
from kubeopt.worker.runners import Runner
from kubeopt.worker.source import Representation, SourceModel


@dataclass(frozen=True)
class BuildContext:
    """Everything a backend needs to build one target; it writes artifacts to ``artifact_dir``."""

    spec: ModelOptimizationSpec
    target: Target
    source: SourceModel
    device: str
    workspace: Path
    artifact_dir: Path
    calibration: Dataset | None
    previous_artifact: Path | None = None  # last published artifact of this target, verified


@dataclass(frozen=True)
class Built:
    """A built target: a runner for validation and timing, and what the report should say."""

    runner: Runner
    compile_seconds: float
    cache_hit: bool = False
    calibration: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    model_files: tuple[str, ...] = ()  # artifact-relative paths of the optimized model


class Backend(Protocol):
    """One backend of the worker; what it supports (precisions per device, formats, calibration
    methods) is in its description, ``kubeopt.api.backends.BACKENDS[name]``."""

    name: ClassVar[BackendName]
    consumes: ClassVar[Representation]

    def check_available(self, device: str) -> None:
        """Raise BackendUnavailable when this image lacks the framework."""

    def build(self, context: BuildContext) -> Built:
        """Convert, calibrate and compile the target; raise a WorkerError on bad input."""
        ...
