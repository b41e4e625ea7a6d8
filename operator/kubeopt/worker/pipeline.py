"""The pipeline: load -> convert -> calibrate -> compile -> validate -> benchmark -> publish.

A run covers every target of the spec (``kubeopt run``) or one (a target Job). The baseline
is run once per process, on the same device as the targets, so speedups are side by side.
A target's failure is recorded with its reason and the other targets go on. Each run publishes
into its own location (storage/runs.py): a succeeded target's files, its manifest last, its
run.json, then the target's current.json pointer; a failed target only its run.json.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kubeopt.api.reasons import Reason
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
from kubeopt.storage.manifest import MANIFEST_NAME, entries_for, sha256_file
from kubeopt.storage.publish import publish_folder
from kubeopt.storage.runs import RunLocation, RunRecord, RunStatus, TargetRuns, new_run_id, spec_digest
from kubeopt.storage.store import S3Settings, Store, store_for
from kubeopt.storage.uri import StorageURI, parse_uri
from kubeopt.worker import benchmark, report, validate
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.registry import BackendRegistry, check_precision
from kubeopt.worker.baseline import DESCRIPTIONS, baseline_runner
from kubeopt.worker.data import Dataset, check_against_outputs, load_dataset, random_dataset
from kubeopt.worker.device import describe_device, library_versions
from kubeopt.worker.errors import (
    AccuracyBudgetExceeded,
    BuildFailed,
    CalibrationDataInvalid,
    InvalidSpec,
    ModelNotFound,
    ValidationDataInvalid,
    WorkerError,
    first_line,
    is_out_of_memory,
    storage_failure,
)
from kubeopt.worker.results import TargetResult
from kubeopt.worker.runners import Runner
from kubeopt.worker.select import choose_best, selection_batch
from kubeopt.worker.signals import Interrupted
from kubeopt.worker.source import FAMILY, SourceModel
from kubeopt.worker.torch_state import borrowed_torch_settings
from kubeopt.worker.triton import triton_config

log = logging.getLogger(__name__)
EXAMPLE_BATCH = 2  # torch.export specializes a dimension of size 1, so examples use 2
CACHE_FILES = ("compile-cache.bin", "timing.cache")
REPORT_FOLDER = "_report"


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
    run_id: str
    started_at: str

    @property
    def spec(self) -> ModelOptimizationSpec:
        return self.resource.spec

    @property
    def output(self) -> StorageURI:
        return self.uri(self.spec.output.uri)

    def target_runs(self, target: Target) -> TargetRuns:
        root = self.output.join(target.name)
        if self.spec.output.layout is OutputLayout.TRITON:
            config = triton_config(target, max(self.spec.benchmark.batch_sizes))
            return TargetRuns(self.store(root), root, triton_model=target.name, triton_config=config)
        return TargetRuns(self.store(root), root)

    def uri(self, text: str) -> StorageURI:
        try:
            return parse_uri(text, base_dir=self.settings.base_dir)
        except StorageError as error:
            raise InvalidSpec(str(error)) from error

    def store(self, uri: StorageURI) -> Store:
        return store_for(uri, S3Settings.for_spec(self.spec.storage.endpoint, self.spec.storage.region))

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
    if settings.workspace is not None:
        settings.workspace.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubeopt-", dir=settings.workspace) as scratch:
        generation = getattr(resource.metadata, "generation", None)
        run_id = new_run_id(to_wire(resource.spec), generation if isinstance(generation, int) else None)
        run = _Run(resource, settings, registry, Path(scratch), run_id, _now())
        targets = _targets(run)
        try:
            inputs = _prepare(run, targets)
        except WorkerError as error:
            failed = [_record_failure(run, TargetResult(t, error.reason, error.message)) for t in targets]
            return _finish(run, failed, error)
        results: list[TargetResult] = []
        try:
            _run_targets(run, targets, inputs, results)
        except Interrupted as stop:
            for target in targets[len(results):]:
                _record_failure(run, TargetResult(target, Reason.INTERRUPTED, f"{stop.signal_name} stopped the run"))
            raise
        return _finish(run, results, None)


def _run_targets(run: _Run, targets: list[Target], inputs: _Inputs, results: list[TargetResult]) -> None:
    """Time the baseline, then build, measure and publish each target, appending to ``results``."""
    baseline_outputs = validate.collect_outputs(inputs.baseline, inputs.validation)
    run.settings.progress(f"baseline: timing {DESCRIPTIONS[inputs.source.family]} at batch sizes "
                          f"{run.spec.benchmark.batch_sizes}")
    baseline_timings = benchmark.time_runner(inputs.baseline, inputs.validation, run.spec.benchmark)
    for target in targets:
        result = _run_target(run, target, inputs, baseline_outputs)
        result = replace(result, baseline_timings=baseline_timings if result.timings else {})
        result = _publish_target(run, result) if result.succeeded else _record_failure(run, result)
        results.append(result)


def _targets(run: _Run) -> list[Target]:
    if run.settings.only_target is None:
        return list(run.spec.targets)
    chosen = [t for t in run.spec.targets if t.name == run.settings.only_target]
    if not chosen:
        names = ", ".join(t.name for t in run.spec.targets)
        raise InvalidSpec(f"--target {run.settings.only_target}: no such target; the spec has {names}")
    return chosen


def _probe_output(run: _Run) -> None:
    """Prove, before any work, that the output can be written and deleted with the credentials at hand.

    Raises StorageFailure naming the output URI and what to fix; a bad output found at publish
    time would cost every build and benchmark before it.
    """
    output = run.output
    probe = output.join(f".kubeopt-probe-{run.run_id}")
    store = run.store(output)
    try:
        store.put_bytes(b"kubeopt storage probe\n", probe)
        store.delete(probe)
    except StorageError as error:
        raise storage_failure(f"output.uri {output} is not writable", error) from error
    run.settings.progress(f"storage: {output} is writable")


@dataclass(frozen=True)
class _Inputs:
    """What every target shares: the source model, its data, and the baseline runner."""

    source: SourceModel
    validation: Dataset
    calibration: Dataset | None
    calibration_error: WorkerError | None  # fails the calibrating targets only
    baseline: Runner


def _prepare(run: _Run, targets: list[Target]) -> _Inputs:
    spec, progress = run.spec, run.settings.progress
    _probe_output(run)
    progress(f"load: {spec.model.format.value} model from {spec.model.uri}")
    model_path = run.fetch(spec.model.uri, run.workspace / "source" / _model_file_name(spec), ModelNotFound,
                           "model.uri")
    if spec.model.format is ModelFormat.ONNX:
        _fetch_external_data(run, spec.model.uri, model_path)
    calibration, calibration_error = None, None
    if spec.calibration is not None and any(_calibrates(t) for t in targets):
        progress(f"calibration data: {spec.calibration.uri}")
        try:
            calibration = _load(run, spec.calibration.uri, "calibration", CalibrationDataInvalid)
        except WorkerError as error:
            progress(f"calibration data: {error.reason.value}: {error.message}; only int8 targets will fail")
            calibration_error = error
    validation, field, invalid = _validation_data(run, calibration, calibration_error is not None)
    example = {k: v[:EXAMPLE_BATCH] for k, v in validation.batch_of(EXAMPLE_BATCH).items()}
    source = SourceModel(spec.model, model_path, run.workspace / "source", run.settings.device, example)
    progress(f"baseline: {DESCRIPTIONS[source.family]} on {run.settings.device}")
    baseline = baseline_runner(source)
    check_against_outputs(validation, baseline.run(example), spec.model.task, field, invalid)
    return _Inputs(source, validation, calibration, calibration_error, baseline)


def _calibrates(target: Target) -> bool:
    return target.precision is Precision.INT8


def _load(run: _Run, uri: str, name: str, invalid: type[WorkerError]) -> Dataset:
    path = run.fetch(uri, run.workspace / "data" / f"{name}.npz", invalid, f"{name}.uri")
    return load_dataset(path, run.spec.model.inputs, run.spec.preprocessing, invalid, f"{name}.uri")


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


def _validation_data(run: _Run, calibration: Dataset | None,
                     calibration_failed: bool) -> tuple[Dataset, str, type[WorkerError]]:
    """(data, the field it came from, the error that names a problem in it)."""
    settings = run.spec.validation
    invalid: type[WorkerError]
    if settings.uri is not None:
        data = _load(run, settings.uri, "validation", ValidationDataInvalid)
        field, invalid = "validation.uri", ValidationDataInvalid
    elif calibration is not None:
        data, field, invalid = calibration, "calibration.uri", CalibrationDataInvalid
    elif run.spec.calibration is not None and not calibration_failed:
        data = _load(run, run.spec.calibration.uri, "calibration", CalibrationDataInvalid)
        field, invalid = "calibration.uri", CalibrationDataInvalid
    else:
        data = random_dataset(run.spec.model.inputs, min(settings.samples, 256))
        field, invalid = "validation.uri", ValidationDataInvalid
    return data.take(settings.samples), field, invalid


def _run_target(run: _Run, target: Target, inputs: _Inputs, baseline_outputs: list[np.ndarray]) -> TargetResult:
    progress = run.settings.progress
    if _calibrates(target) and inputs.calibration_error is not None:
        error = inputs.calibration_error
        progress(f"{target.name}: FAILED {error.reason.value}: {error.message}")
        return TargetResult(target, error.reason, error.message)
    workspace = run.workspace / "targets" / target.name
    artifact_dir = workspace / "artifact"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    try:
        backend = run.registry.get(target.backend)
        backend.check_available(run.settings.device)
        check_precision(target, run.settings.device)
        previous = _previous_artifact(run, target, workspace / "previous")
        progress(f"{target.name}: build {target.backend.value} {target.precision.value}"
                 + (" (int8 calibration)" if target.precision is Precision.INT8 else ""))
        context = BuildContext(run.spec, target, inputs.source, run.settings.device, workspace, artifact_dir,
                               inputs.calibration, previous)
        with borrowed_torch_settings():  # what a target sets in torch is restored for the next
            # Validation and the benchmark run the artifact as written to disk and read back the
            # way a server reads it, never the object the build held: what is published is what was measured.
            built = backend.build(context)
            built = backend.load(context, built)
            validated = _digests(artifact_dir, built.model_files)
            progress(f"{target.name}: built in {built.compile_seconds:.1f}s"
                     + (" from a stored compile cache" if built.cache_hit else "")
                     + "; validating the written artifact")
            result = _measure(run, target, built, inputs.validation, baseline_outputs)
            return replace(result, details={**result.details, "validatedSha256": validated})
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
    runner = built.runner
    if runner is None:
        raise TypeError(f"backend {target.backend.value}: load() returned no runner")
    outputs = validate.collect_outputs(runner, validation)
    accuracy = validate.compare(baseline_outputs, outputs, validation.labels, run.spec.model.task)
    verdict = validate.judge(accuracy, run.spec.validation.budget)
    run.settings.progress(f"{target.name}: relative error {accuracy.relative_error:.2e}"
                          + (f", top-1 agreement {accuracy.top1_agreement:.4f}" if accuracy.top1_agreement
                             is not None else "") + "; benchmarking")
    timings = benchmark.time_runner(runner, validation, run.spec.benchmark)
    result = TargetResult(target, compile_seconds=built.compile_seconds, cache_hit=built.cache_hit,
                          accuracy=accuracy, verdict=verdict, timings=timings, calibration=built.calibration,
                          details={**built.details, "modelFiles": list(built.model_files)})
    if not verdict.within_budget:
        error = AccuracyBudgetExceeded("; ".join(verdict.reasons) + " (validation.budget)")
        return replace(result, reason=error.reason, message=error.message)
    return result


def _digests(folder: Path, model_files: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each model file (every file under a model folder) as it was loaded for validation."""
    return {entry.path: entry.sha256 for entry in entries_for(folder)
            if any(entry.path == name or entry.path.startswith(name + "/") for name in model_files)}


def _changed_since_validation(folder: Path, result: TargetResult) -> list[str]:
    """The model files whose bytes are no longer those validated and benchmarked."""
    validated: dict[str, str] = result.details.get("validatedSha256", {})
    return [path for path, digest in validated.items()
            if not (folder / path).is_file() or sha256_file(folder / path) != digest]


def _previous_artifact(run: _Run, target: Target, dest: Path) -> Path | None:
    """Fetch the cache files of the run this target's pointer names, if that run still verifies."""
    runs = run.target_runs(target)
    try:
        current = runs.current()
        if current is None:
            return None
        found = False
        for name in CACHE_FILES:
            if runs.store.exists(current.join(name)):
                dest.mkdir(parents=True, exist_ok=True)
                (dest / name).write_bytes(runs.store.get_bytes(current.join(name)))
                found = True
    except StorageError as error:
        log.warning("no compile cache from the current run of %s: %s", target.name, error)
        return None
    return dest if found else None


def _publish_target(run: _Run, result: TargetResult) -> TargetResult:
    """Publish into a new run location, verify it, record it, then move the target's pointer to it."""
    target = result.target
    folder = run.workspace / "targets" / target.name / "artifact"
    runs = run.target_runs(target)
    try:
        location = runs.locate(run.run_id)
    except StorageError as error:
        failure = storage_failure(f"publish to {runs.root}", error)
        return replace(result, reason=failure.reason, message=failure.message)
    changed = _changed_since_validation(folder, result)
    if changed:  # what is published is what was validated, byte for byte
        failure = BuildFailed(f"{', '.join(changed)} changed on disk after validation; nothing of this run is "
                              "current (run it again)")
        return _record_failure(run, replace(result, run=location, reason=failure.reason, message=failure.message))
    result = replace(result, run=location)
    batch = selection_batch(run.spec.selection, run.spec.benchmark.batch_sizes)
    single = _report(run, [result], target.name if result.eligible else None, batch)
    (folder / "report.json").write_text(report.render_json(single))
    (folder / "report.html").write_text(report.render_html(single))
    if result.calibration:
        (folder / "calibration.json").write_text(report.render_json(result.calibration))
    metadata = {"target": target.name, "backend": target.backend.value, "precision": target.precision.value,
                "resource": run.resource.metadata.name, "runId": run.run_id,
                "specSha256": spec_digest(to_wire(run.spec)), "spec": to_wire(run.spec)}
    try:
        published = publish_folder(runs.store, folder, location.uri, metadata)
        record = _record(run, result, location, published.manifest_sha256)
        runs.promote(location, published.manifest_sha256, record)
    except StorageError as error:
        failure = storage_failure(f"publish to {location.uri}", error)
        failed = replace(result, reason=failure.reason, message=failure.message)
        return _record_failure(run, failed)
    run.settings.progress(f"{target.name}: published {published.files} files to {location.uri} "
                          f"({MANIFEST_NAME}, run.json, then {runs.pointer_uri.key.rsplit('/', 1)[-1]})")
    _prune(runs, run.spec.output.keep_runs)
    return replace(result, published=published, current=True)


def _record(run: _Run, result: TargetResult, location: RunLocation, manifest_sha256: str | None) -> RunRecord:
    return RunRecord(run_id=run.run_id, target=result.target.name,
                     status=RunStatus.SUCCEEDED if result.succeeded else RunStatus.FAILED,
                     reason=result.reason.value, message=result.message, uri=str(location.uri),
                     started_at=run.started_at, finished_at=_now(), manifest_sha256=manifest_sha256,
                     version=location.version)


def _record_failure(run: _Run, result: TargetResult) -> TargetResult:
    """Write a failed run's run.json (its only file); the pointer stays on the last good run."""
    runs = run.target_runs(result.target)
    try:
        location = result.run or runs.locate(run.run_id)
        runs.record(location, _record(run, result, location, None))
    except (StorageError, WorkerError) as error:
        log.warning("could not record the failed run of %s: %s", result.target.name, error)
        return result
    return replace(result, run=location)


def _prune(runs: TargetRuns, keep: int) -> None:
    try:
        deleted = runs.prune(keep)
    except StorageError as error:
        log.warning("could not delete old runs under %s: %s", runs.root, error)
        return
    if deleted:
        log.info("deleted %d old run(s) under %s (output.keepRuns %d): %s", len(deleted), runs.root, keep,
                 ", ".join(deleted))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _report(run: _Run, results: list[TargetResult], best: str | None, batch: int) -> dict[str, Any]:
    spec = run.spec
    return report.build_report(
        results, name=run.resource.metadata.name,
        model={"uri": spec.model.uri, "format": spec.model.format.value, "task": spec.model.task.value},
        baseline=DESCRIPTIONS[FAMILY[spec.model.format]], device=describe_device(run.settings.device),
        versions=library_versions(), batch=batch, objective=spec.selection.objective.value, best=best,
        budget=spec.validation.budget)


def _finish(run: _Run, results: list[TargetResult], failure: WorkerError | None) -> RunOutcome:
    batch = selection_batch(run.spec.selection, run.spec.benchmark.batch_sizes)
    best = choose_best(results, run.spec.selection, run.spec.benchmark.batch_sizes)
    full = _report(run, results, best.target.name if best else None, batch)
    report_uri = None
    if run.settings.only_target is None:
        report_uri = _publish_run_report(run, full)
    return RunOutcome(results, best, batch, run.settings.device, full, report_uri, failure)


def _publish_run_report(run: _Run, full: dict[str, Any]) -> str | None:
    """A local run also writes one report over all targets: <output>/_report/runs/<run-id>/, then its pointer."""
    folder = run.workspace / "run-report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(report.render_json(full))
    (folder / "report.html").write_text(report.render_html(full))
    try:
        root = run.output.join(REPORT_FOLDER)
        runs = TargetRuns(run.store(root), root)
        location = runs.locate(run.run_id)
        published = publish_folder(runs.store, folder, location.uri,
                                   {"resource": run.resource.metadata.name, "runId": run.run_id})
        runs.promote(location, published.manifest_sha256, RunRecord(
            run_id=run.run_id, target=REPORT_FOLDER, status=RunStatus.SUCCEEDED, reason=Reason.SUCCEEDED.value,
            message="", uri=str(location.uri), started_at=run.started_at, finished_at=_now(),
            manifest_sha256=published.manifest_sha256))
    except (StorageError, WorkerError) as error:
        log.error("could not publish the run report: %s", error)
        return None
    _prune(runs, run.spec.output.keep_runs)
    return str(location.uri.join("report.html"))
