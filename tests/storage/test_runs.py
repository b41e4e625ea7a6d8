"""Immutable runs on a local file system: run ids, the pointer, failed runs, retention, Triton versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeopt.storage.errors import ManifestMismatch
from kubeopt.storage.manifest import MANIFEST_NAME
from kubeopt.storage.publish import publish_folder
from kubeopt.storage.runs import (
    POINTER_NAME,
    RECORD_NAME,
    RunRecord,
    RunStatus,
    TargetRuns,
    current_run,
    new_run_id,
)
from kubeopt.storage.store import LocalStore
from kubeopt.storage.uri import parse_uri


def artifact(folder: Path, payload: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    (folder / "report.json").write_text("{}")
    return folder


def record(runs: TargetRuns, run_id: str, status: RunStatus, sha: str | None = None) -> RunRecord:
    return RunRecord(run_id=run_id, target="t", status=status, reason="Succeeded" if sha else "BuildFailed",
                     message="", uri=str(runs.runs_root.join(run_id)), started_at="s", finished_at="f",
                     manifest_sha256=sha)


def good_run(runs: TargetRuns, tmp_path: Path, run_id: str, payload: bytes) -> str:
    location = runs.locate(run_id)
    published = publish_folder(runs.store, artifact(tmp_path / "src" / run_id, payload), location.uri, {})
    runs.promote(location, published.manifest_sha256, record(runs, run_id, RunStatus.SUCCEEDED,
                                                             published.manifest_sha256))
    return run_id


@pytest.fixture()
def runs(tmp_path: Path) -> TargetRuns:
    return TargetRuns(LocalStore(), parse_uri(str(tmp_path / "out" / "t")))


def test_run_ids_carry_time_generation_and_spec_hash_and_sort_oldest_first() -> None:
    early = new_run_id({"a": 1}, 3, datetime(2026, 11, 29, 18, 42, 18, 123000, tzinfo=UTC))
    late = new_run_id({"a": 1}, 3, datetime(2026, 11, 29, 18, 42, 18, 124000, tzinfo=UTC))

    assert early.startswith("20261129T184218123Z-g3-")
    assert len(early.rsplit("-", 1)[1]) == 12
    assert sorted([late, early]) == [early, late]
    assert new_run_id({"a": 2}, 3, datetime(2026, 11, 29, tzinfo=UTC)).rsplit("-", 1)[1] != early.rsplit("-", 1)[1]


def test_a_good_run_lands_in_its_own_folder_and_the_pointer_names_it(runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"first")

    pointer = json.loads((tmp_path / "out" / "t" / POINTER_NAME).read_text())
    assert pointer["path"] == "runs/r1"
    assert current_run(LocalStore(), runs.root) == runs.runs_root.join("r1")
    assert (tmp_path / "out" / "t" / "runs" / "r1" / "model.onnx").read_bytes() == b"first"


def test_a_second_run_never_overwrites_the_first(runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"first")
    good_run(runs, tmp_path, "r2", b"second")

    assert (tmp_path / "out" / "t" / "runs" / "r1" / "model.onnx").read_bytes() == b"first"
    assert runs.current() == runs.runs_root.join("r2")


def test_a_failed_run_is_recorded_as_failed_and_the_pointer_stays(runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"first")
    runs.record(runs.locate("r2"), record(runs, "r2", RunStatus.FAILED))

    failed = json.loads((tmp_path / "out" / "t" / "runs" / "r2" / RECORD_NAME).read_text())
    assert failed["status"] == "Failed" and failed["reason"] == "BuildFailed"
    assert sorted(p.name for p in (tmp_path / "out" / "t" / "runs" / "r2").iterdir()) == [RECORD_NAME]
    assert runs.current() == runs.runs_root.join("r1")


def test_the_pointer_does_not_move_to_a_run_that_differs_from_what_was_published(
        runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"first")
    location = runs.locate("r2")
    published = publish_folder(runs.store, artifact(tmp_path / "src2", b"second"), location.uri, {})
    (tmp_path / "out" / "t" / "runs" / "r2" / "model.onnx").write_bytes(b"altered")

    with pytest.raises(ManifestMismatch, match=r"model\.onnx does not match"):
        runs.promote(location, published.manifest_sha256, record(runs, "r2", RunStatus.SUCCEEDED, "x"))

    assert runs.current() == runs.runs_root.join("r1")
    assert not (tmp_path / "out" / "t" / "runs" / "r2" / RECORD_NAME).exists()


def test_a_current_run_altered_after_promotion_is_no_longer_current(runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"first")
    (tmp_path / "out" / "t" / "runs" / "r1" / MANIFEST_NAME).write_text('{"files": []}')

    assert runs.current() is None


def test_retention_deletes_the_oldest_runs_first(runs: TargetRuns, tmp_path: Path) -> None:
    for name in ("r1", "r2", "r3", "r4"):
        good_run(runs, tmp_path, name, name.encode())

    deleted = runs.prune(2)

    assert deleted == ["r1", "r2"]
    assert sorted(p.name for p in (tmp_path / "out" / "t" / "runs").iterdir()) == ["r3", "r4"]


def test_retention_never_deletes_the_current_run(runs: TargetRuns, tmp_path: Path) -> None:
    good_run(runs, tmp_path, "r1", b"good")
    for name in ("r2", "r3", "r4"):
        runs.record(runs.locate(name), record(runs, name, RunStatus.FAILED))

    deleted = runs.prune(2)

    assert deleted == ["r2", "r3"]
    assert runs.run_names() == ["r1", "r4"]
    assert runs.current() == runs.runs_root.join("r1")


def test_triton_layout_maps_runs_to_numeric_versions_and_serves_only_the_current_one(tmp_path: Path) -> None:
    root = parse_uri(str(tmp_path / "repo" / "t"))
    runs = TargetRuns(LocalStore(), root, triton_model="t", triton_config='name: "t"\n')
    first = runs.locate("r1")
    published = publish_folder(runs.store, artifact(tmp_path / "a", b"v1"), first.uri, {})
    runs.promote(first, published.manifest_sha256, record(runs, "r1", RunStatus.SUCCEEDED, "x"))
    runs.record(runs.locate("r2"), record(runs, "r2", RunStatus.FAILED))

    third = runs.locate("r3")

    assert (first.version, third.version) == (1, 3)
    assert (tmp_path / "repo" / "t" / "t" / "1" / "model.onnx").read_bytes() == b"v1"
    config = (tmp_path / "repo" / "t" / "t" / "config.pbtxt").read_text()
    assert config.startswith('name: "t"') and "version_policy: { specific: { versions: [1] } }" in config
    assert runs.current() == root.join("t", "1")
