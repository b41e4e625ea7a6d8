"""The pipeline: load -> convert -> calibrate -> compile -> validate -> benchmark -> publish.

A run covers every target of the spec (``kubeopt run``) or one (a target Job). The baseline
is run once per process, on the same device as the targets, so speedups are side by side.
A target's failure is recorded with its reason and the other targets go on; nothing of a
failed target is published, and a published target's manifest is written last.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kubeopt.api.spec import (
    ModelFormat,
    ModelOptimization,
    ModelOptimizationSpec,
    OutputLayout,
    Precision,
    Target,
    to_wire,
)
from kubeopt.storage.errors import ObjectNotFound, StorageError
from kubeopt.storage.manifest import MANIFEST_NAME, verify
from kubeopt.storage.publish import publish_folder
from kubeopt.storage.store import Store, store_for
from kubeopt.storage.uri import StorageURI, parse_uri
from kubeopt.worker import benchmark, report, validate
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.registry import BackendRegistry
from kubeopt.worker.baseline import DESCRIPTIONS, baseline_runner
from kubeopt.worker.data import Dataset, load_dataset, random_dataset
from kubeopt.worker.device import describe_device, library_versions
from kubeopt.worker.errors import (
    AccuracyBudgetExceeded,
    BuildFailed,
    CalibrationDataInvalid,
    InvalidSpec,
    ModelNotFound,
    WorkerError,
    first_line,
    is_out_of_memory,
    storage_failure,
)
from kubeopt.worker.results import TargetResult
from kubeopt.worker.runners import Runner
from kubeopt.worker.select import choose_best, selection_batch
from kubeopt.worker.source import FAMILY, SourceModel
from kubeopt.worker.torch_state import borrowed_torch_settings
from kubeopt.worker.triton import to_triton_layout

log = logging.getLogger(__name__)
EXAMPLE_BATCH = 2  # torch.export specializes a dimension of size 1, so examples use 2
CACHE_FILES = ("compile-cache.bin", "timing.cache")


@dataclass(frozen=True)
class RunSettings:
    device: str
    workspace: Path | None = None
    only_target: str | None = None
    base_dir: Path = Path(".")
    progress: Callable[[str], None] = log.info


@dataclass(frozen=True)
class RunOutcome:
    results: list[TargetResult]
    best: TargetResult | None
    batch: int
    device: str
    report: dict[str, Any]
    report_uri: str | None
    failure: WorkerError | None = None  # a failure before any target could run


@dataclass
class _Run:
    resource: ModelOptimization
    settings: RunSettings
    registry: BackendRegistry
    workspace: Path

    @property
    def spec(self) -> ModelOptimizationSpec:
        return self.resource.spec

    def uri(self, text: str) -> StorageURI:
        try:
            return parse_uri(text, base_dir=self.settings.base_dir)
        except StorageError as error:
            raise InvalidSpec(str(error)) from error

    def store(self, uri: StorageURI) -> Store:
        return store_for(uri)

    def fetch(self, text: str, dest: Path, missing: type[WorkerError], field: str) -> Path:
        uri = self.uri(text)
        if uri.scheme == "file":
            if not uri.local_path.exists():
                raise missing(f"{field}: {text} does not exist")
            return uri.local_path
        try:
            self.store(uri).get_file(uri, dest)
        except ObjectNotFound as error:
            raise missing(f"{field}: {text} does not exist") from error
        except StorageError as error:
            raise storage_failure(field, error) from error
        return dest


def run_optimization(resource: ModelOptimization, settings: RunSettings, registry: BackendRegistry) -> RunOutcome:
    """Run the spec's targets (or the one named in settings) and publish what succeeds."""
    with tempfile.TemporaryDirectory(prefix="kubeopt-") as scratch:
        run = _Run(resource, settings, registry, settings.workspace or Path(scratch))
        targets = _targets(run)
        try:
            source, validation, calibration, baseline = _prepare(run, targets)
        except WorkerError as error:
            failed = [TargetResult(t, error.reason, error.message) for t in targets]
            return _finish(run, failed, error)
        baseline_outputs = validate.collect_outputs(baseline, validation)
        settings.progress(f"baseline: timing {DESCRIPTIONS[source.family]} at batch sizes "
                          f"{run.spec.benchmark.batch_sizes}")
        baseline_timings = benchmark.time_runner(baseline, validation, run.spec.benchmark)
        results = []
        for target in targets:
            result = _run_target(run, target, source, validation, calibration, baseline_outputs)
            result = replace(result, baseline_timings=baseline_timings if result.timings else {})
            if result.succeeded:
                result = _publish_target(run, result)
            results.append(result)
        return _finish(run, results, None)


def _targets(run: _Run) -> list[Target]:
    if run.settings.only_target is None:
        return list(run.spec.targets)
    chosen = [t for t in run.spec.targets if t.name == run.settings.only_target]
    if not chosen:
        names = ", ".join(t.name for t in run.spec.targets)
        raise InvalidSpec(f"--target {run.settings.only_target}: no such target; the spec has {names}")
    return chosen


def _prepare(run: _Run, targets: list[Target]) -> tuple[SourceModel, Dataset, Dataset | None, Runner]:
    spec, progress = run.spec, run.settings.progress
    progress(f"load: {spec.model.format.value} model from {spec.model.uri}")
    model_path = run.fetch(spec.model.uri, run.workspace / "source" / _model_file_name(spec), ModelNotFound,
                           "model.uri")
    if spec.model.format is ModelFormat.ONNX:
        _fetch_external_data(run, spec.model.uri, model_path)
    calibration = None
    if spec.calibration is not None and any(t.precision is Precision.INT8 for t in targets):
        progress(f"calibration data: {spec.calibration.uri}")
        path = run.fetch(spec.calibration.uri, run.workspace / "data" / "calibration.npz", CalibrationDataInvalid,
                         "calibration.uri")
        calibration = load_dataset(path, spec.model.inputs, spec.preprocessing, CalibrationDataInvalid,
                                   "calibration.uri")
    validation = _validation_data(run, calibration)
    example = {k: v[:EXAMPLE_BATCH] for k, v in validation.batch_of(EXAMPLE_BATCH).items()}
    source = SourceModel(spec.model, model_path, run.workspace / "source", run.settings.device, example)
    progress(f"baseline: {DESCRIPTIONS[source.family]} on {run.settings.device}")
    return source, validation, calibration, baseline_runner(source)


def _model_file_name(spec: ModelOptimizationSpec) -> str:
    name = spec.model.uri.rstrip("/").rsplit("/", 1)[-1]
    return name or "model"


def _fetch_external_data(run: _Run, uri: str, model_path: Path) -> None:
    """ONNX weights over 2 GiB (and the torch exporter's default) live in <model>.onnx.data beside it."""
    data_uri = run.uri(uri + ".data")
    if data_uri.scheme == "file":
        return  # already beside the model
    store = run.store(data_uri)
    try:
        if store.exists(data_uri):
            store.get_file(data_uri, model_path.with_name(model_path.name + ".data"))
    except StorageError as error:
        raise storage_failure("model.uri", error) from error


def _validation_data(run: _Run, calibration: Dataset | None) -> Dataset:
    settings = run.spec.validation
    if settings.uri is not None:
        path = run.fetch(settings.uri, run.workspace / "data" / "validation.npz", InvalidSpec, "validation.uri")
        data = load_dataset(path, run.spec.model.inputs, run.spec.preprocessing, InvalidSpec, "validation.uri")
    elif calibration is not None:
        data = calibration
    elif run.spec.calibration is not None:
        path = run.fetch(run.spec.calibration.uri, run.workspace / "data" / "calibration.npz",
                         CalibrationDataInvalid, "calibration.uri")
        data = load_dataset(path, run.spec.model.inputs, run.spec.preprocessing, CalibrationDataInvalid,
                            "calibration.uri")
    else:
        data = random_dataset(run.spec.model.inputs, min(settings.samples, 256))
    return data.take(settings.samples)


def _run_target(run: _Run, target: Target, source: SourceModel, validation: Dataset,
                calibration: Dataset | None, baseline_outputs: list[np.ndarray]) -> TargetResult:
    progress = run.settings.progress
    workspace = run.workspace / "targets" / target.name
    artifact_dir = workspace / "artifact"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    try:
        backend = run.registry.get(target.backend)
        if target.precision not in backend.precisions:
            supported = ", ".join(p.value for p in Precision if p in backend.precisions)
            raise InvalidSpec(f"target {target.name}: backend {target.backend.value} supports {supported}, not "
                              f"{target.precision.value}; torch-compile takes every precision")
        backend.check_available(run.settings.device)
        previous = _previous_artifact(run, target, workspace / "previous")
        progress(f"{target.name}: build {target.backend.value} {target.precision.value}"
                 + (" (int8 calibration)" if target.precision is Precision.INT8 else ""))
        context = BuildContext(run.spec, target, source, run.settings.device, workspace, artifact_dir,
                               calibration, previous)
        with borrowed_torch_settings():  # what a target sets in torch is restored for the next
            built = backend.build(context)
            progress(f"{target.name}: built in {built.compile_seconds:.1f}s"
                     + (" from a stored compile cache" if built.cache_hit else "") + "; validating")
            return _measure(run, target, built, validation, baseline_outputs)
    except WorkerError as error:
        progress(f"{target.name}: FAILED {error.reason.value}: {error.message}")
        return TargetResult(target, error.reason, error.message)
    except Exception as error:
        if not is_out_of_memory(error):  # torch.cuda.OutOfMemoryError; others are bugs
            raise
        message = (f"out of GPU memory: {first_line(error, 200)}; lower benchmark.batchSizes "
                   "or tensorrt.maxBatchSize")
        progress(f"{target.name}: FAILED BuildFailed: {message}")
        return TargetResult(target, BuildFailed.reason, message)


def _measure(run: _Run, target: Target, built: Built, validation: Dataset,
             baseline_outputs: list[np.ndarray]) -> TargetResult:
    outputs = validate.collect_outputs(built.runner, validation)
    accuracy = validate.compare(baseline_outputs, outputs, validation.labels, run.spec.model.task)
    verdict = validate.judge(accuracy, run.spec.validation.budget)
    run.settings.progress(f"{target.name}: relative error {accuracy.relative_error:.2e}"
                          + (f", top-1 agreement {accuracy.top1_agreement:.4f}" if accuracy.top1_agreement
                             is not None else "") + "; benchmarking")
    timings = benchmark.time_runner(built.runner, validation, run.spec.benchmark)
    result = TargetResult(target, compile_seconds=built.compile_seconds, cache_hit=built.cache_hit,
                          accuracy=accuracy, verdict=verdict, timings=timings, calibration=built.calibration,
                          details={**built.details, "modelFiles": list(built.model_files)})
    if not verdict.within_budget:
        error = AccuracyBudgetExceeded("; ".join(verdict.reasons) + " (validation.budget)")
        return replace(result, reason=error.reason, message=error.message)
    return result


def _previous_artifact(run: _Run, target: Target, dest: Path) -> Path | None:
    """Fetch the cache files of this target's last published artifact, if its manifest verifies."""
    prefix = run.uri(run.spec.output.uri).join(target.name)
    store = run.store(prefix)
    try:
        entries = {e.path: e for e in verify(store, prefix)}
    except StorageError:
        return None
    found = False
    for name in CACHE_FILES:
        if name in entries:
            dest.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(store.get_bytes(prefix.join(name)))
            found = True
    return dest if found else None


def _publish_target(run: _Run, result: TargetResult) -> TargetResult:
    target = result.target
    folder = run.workspace / "targets" / target.name / "artifact"
    batch = selection_batch(run.spec.selection, run.spec.benchmark.batch_sizes)
    single = _report(run, [result], target.name if result.eligible else None, batch)
    (folder / "report.json").write_text(report.render_json(single))
    (folder / "report.html").write_text(report.render_html(single))
    if result.calibration:
        (folder / "calibration.json").write_text(report.render_json(result.calibration))
    if run.spec.output.layout is OutputLayout.TRITON:
        to_triton_layout(folder, target, max(run.spec.benchmark.batch_sizes))
    dest = run.uri(run.spec.output.uri).join(target.name)
    metadata = {"target": target.name, "backend": target.backend.value, "precision": target.precision.value,
                "resource": run.resource.metadata.name, "spec": to_wire(run.spec)}
    try:
        published = publish_folder(run.store(dest), folder, dest, metadata)
    except StorageError as error:
        failure = storage_failure(f"publish to {dest}", error)
        return replace(result, reason=failure.reason, message=failure.message)
    run.settings.progress(f"{target.name}: published {published.files} files to {dest} ({MANIFEST_NAME} last)")
    return replace(result, published=published)


def _report(run: _Run, results: list[TargetResult], best: str | None, batch: int) -> dict[str, Any]:
    spec = run.spec
    return report.build_report(
        results, name=run.resource.metadata.name,
        model={"uri": spec.model.uri, "format": spec.model.format.value, "task": spec.model.task.value},
        baseline=DESCRIPTIONS[FAMILY[spec.model.format]], device=describe_device(run.settings.device),
        versions=library_versions(), batch=batch, objective=spec.selection.objective.value, best=best)


def _finish(run: _Run, results: list[TargetResult], failure: WorkerError | None) -> RunOutcome:
    batch = selection_batch(run.spec.selection, run.spec.benchmark.batch_sizes)
    best = choose_best(results, run.spec.selection, run.spec.benchmark.batch_sizes)
    full = _report(run, results, best.target.name if best else None, batch)
    report_uri = None
    if run.settings.only_target is None:
        report_uri = _publish_run_report(run, full)
    return RunOutcome(results, best, batch, run.settings.device, full, report_uri, failure)


def _publish_run_report(run: _Run, full: dict[str, Any]) -> str | None:
    """A local run also writes one report over all targets to <output>/_report/."""
    folder = run.workspace / "run-report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(report.render_json(full))
    (folder / "report.html").write_text(report.render_html(full))
    try:
        dest = run.uri(run.spec.output.uri).join("_report")
        publish_folder(run.store(dest), folder, dest, {"resource": run.resource.metadata.name})
    except (StorageError, WorkerError) as error:
        log.error("could not publish the run report: %s", error)
        return None
    return str(dest.join("report.html"))
