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
    """A built target: what the report should say, and (once ``Backend.load`` read the artifact
    back from disk) the runner that validation and the benchmark use."""

    runner: Runner | None
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
        """Convert, calibrate and compile the target into ``context.artifact_dir``; raise a
        WorkerError on bad input."""
        ...

    def load(self, context: BuildContext, built: Built) -> Built:
        """Read the artifact back from ``context.artifact_dir`` the way a server loads it; return
        ``built`` with the runner validation and the benchmark use, so what is published is what
        was measured (never the object the build held in memory)."""
        ...
