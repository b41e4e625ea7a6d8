from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubeopt.storage.errors import ManifestMismatch, StorageError
from kubeopt.storage.manifest import MANIFEST_NAME, verify
from kubeopt.storage.publish import publish_folder
from kubeopt.storage.store import LocalStore
from kubeopt.storage.uri import parse_uri


def artifact(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"\x08\x07model")
    (folder / "sub" / "report.json").write_text('{"ok": true}')
    return folder


class RecordingStore(LocalStore):
    """A real local store that remembers the order files were written in."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def put_file(self, source: Path, dest: object) -> None:  # type: ignore[override]
        self.order.append(Path(str(dest)).name)
        super().put_file(source, dest)  # type: ignore[arg-type]

    def put_bytes(self, data: bytes, dest: object) -> None:  # type: ignore[override]
        self.order.append(Path(str(dest)).name)
        super().put_bytes(data, dest)  # type: ignore[arg-type]


def test_publish_writes_every_file_then_the_manifest_last(tmp_path: Path) -> None:
    store = RecordingStore()
    dest = parse_uri(str(tmp_path / "out"))

    published = publish_folder(store, artifact(tmp_path / "a"), dest, {"target": "t"})

    assert store.order[-1] == MANIFEST_NAME
    assert published.files == 2
    assert [e.path for e in verify(store, dest)] == ["model.onnx", "sub/report.json"]


def test_manifest_lists_sha256_and_size_of_each_file(tmp_path: Path) -> None:
    dest = parse_uri(str(tmp_path / "out"))
    publish_folder(LocalStore(), artifact(tmp_path / "a"), dest, {})

    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())

    entry = next(f for f in manifest["files"] if f["path"] == "model.onnx")
    assert entry["size"] == 7
    assert len(entry["sha256"]) == 64


def test_an_altered_file_fails_verification(tmp_path: Path) -> None:
    dest = parse_uri(str(tmp_path / "out"))
    publish_folder(LocalStore(), artifact(tmp_path / "a"), dest, {})
    (tmp_path / "out" / "model.onnx").write_bytes(b"tampered")

    with pytest.raises(ManifestMismatch, match=r"model.onnx does not match its manifest"):
        verify(LocalStore(), dest)


def test_an_artifact_without_manifest_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.onnx").write_bytes(b"half")

    with pytest.raises(ManifestMismatch, match=r"no manifest.json; the artifact is incomplete"):
        verify(LocalStore(), parse_uri(str(tmp_path / "out")))


def test_republishing_removes_the_old_manifest_before_new_files_land(tmp_path: Path) -> None:
    dest = parse_uri(str(tmp_path / "out"))
    publish_folder(LocalStore(), artifact(tmp_path / "a"), dest, {})

    class FailingStore(LocalStore):
        def put_file(self, source: Path, target: object) -> None:  # type: ignore[override]
            raise StorageError("disk full")

    with pytest.raises(StorageError):
        publish_folder(FailingStore(), artifact(tmp_path / "b"), dest, {})

    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_uris_parse_to_s3_or_absolute_local_paths(tmp_path: Path) -> None:
    assert str(parse_uri("s3://bucket/a/b")) == "s3://bucket/a/b"
    assert parse_uri("model.onnx", base_dir=tmp_path).local_path == tmp_path / "model.onnx"
    assert parse_uri("file:///data/x").local_path == Path("/data/x")
    assert parse_uri("pvc://models/resnet").local_path == Path("/mnt/pvc/models/resnet")


def test_unknown_scheme_says_which_are_supported() -> None:
    with pytest.raises(StorageError, match="unsupported scheme 'gs'; use s3://, file://, pvc:// or a path"):
        parse_uri("gs://bucket/x")
