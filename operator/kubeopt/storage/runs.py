"""Immutable runs and the pointer readers follow.

Every run of a target publishes into a location of its own and never over an earlier one:

    <output>/<target>/runs/<run-id>/      model, reports, manifest.json (last), run.json
    <output>/<target>/current.json        the pointer: the run to serve, written last

A run id is ``<UTC time>-g<generation>-<spec hash>``, e.g. ``20261129T184218123Z-g3-1a2b3c4d5e6f``:
the time first, so that names sort oldest first; the resource's generation; the first 12 hex
digits of the sha256 of the spec the worker ran (canonical JSON). With ``output.layout: triton``
runs are Triton's numeric model versions instead (``<output>/<target>/<target>/<n>/``) and
``config.pbtxt`` names the one version Triton serves, so Triton follows the same pointer.

The pointer moves only to a run whose manifest verifies against what was just published and
that passed its budget; a failed run leaves ``run.json`` with its reason and nothing else, and
the pointer stays where it was. A pointer is one object: an S3 PUT is atomic and a local write
goes to a temporary name and is renamed, so a reader sees the old pointer or the new one.
Retention keeps the newest runs up to a count and deletes the oldest first, never the current one.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kubeopt.storage.errors import ManifestMismatch, ObjectNotFound, StorageError
from kubeopt.storage.manifest import MANIFEST_NAME, sha256_bytes, verify
from kubeopt.storage.store import Store
from kubeopt.storage.uri import StorageURI

log = logging.getLogger(__name__)

RUNS_FOLDER = "runs"
POINTER_NAME = "current.json"
RECORD_NAME = "run.json"
TRITON_CONFIG = "config.pbtxt"


class RunStatus(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def spec_digest(spec: Mapping[str, Any]) -> str:
    """sha256 of the spec as canonical JSON (sorted keys, no spaces)."""
    return sha256_bytes(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())


def new_run_id(spec: Mapping[str, Any], generation: int | None, now: datetime | None = None) -> str:
    """``<UTC time to the millisecond>Z-g<generation>-<12 hex of the spec digest>``; sorts oldest first."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-g{generation or 0}-{spec_digest(spec)[:12]}"


@dataclass(frozen=True)
class RunLocation:
    """Where one run of a target lives: its id, its folder, and its Triton version when the layout has one."""

    run_id: str
    uri: StorageURI
    version: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: what became of a run. Written after its files (and for a failed run, alone)."""

    run_id: str
    target: str
    status: RunStatus
    reason: str
    message: str
    uri: str
    started_at: str
    finished_at: str
    manifest_sha256: str | None = None
    version: int | None = None

    def render(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(body, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class Pointer:
    """``current.json``: the run readers follow (``path`` is relative to the target's folder, so a
    copied or moved output still resolves), and the manifest digest the run must still match."""

    run_id: str
    path: str
    uri: str
    manifest_sha256: str
    updated_at: str
    version: int | None = None

    def render(self) -> bytes:
        body: dict[str, Any] = {"runId": self.run_id, "path": self.path, "uri": self.uri,
                                "manifestSha256": self.manifest_sha256, "updatedAt": self.updated_at}
        if self.version is not None:
            body["version"] = self.version
        return json.dumps(body, indent=2, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Pointer:
        body = json.loads(data)
        return cls(run_id=str(body["runId"]), path=str(body["path"]), uri=str(body.get("uri", "")),
                   manifest_sha256=str(body["manifestSha256"]), updated_at=str(body.get("updatedAt", "")),
                   version=body.get("version"))


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TargetRuns:
    """The runs of one target under ``root`` (``<output>/<target>``) in one store.

    ``triton_model`` is the Triton model name when ``output.layout`` is triton: runs are then
    numeric versions in ``<root>/<triton_model>/`` and promoting one rewrites its config.pbtxt.
    """

    store: Store
    root: StorageURI
    triton_model: str | None = None
    triton_config: str | None = None  # config.pbtxt without its version_policy

    @property
    def runs_root(self) -> StorageURI:
        return self.root.join(self.triton_model or RUNS_FOLDER)

    @property
    def pointer_uri(self) -> StorageURI:
        return self.root.join(POINTER_NAME)

    def run_names(self) -> list[str]:
        """Names of the runs stored, oldest first (run ids sort by time; Triton versions by number)."""
        folder = StorageURI(self.runs_root.scheme, self.runs_root.bucket, self.runs_root.key.rstrip("/") + "/")
        names = {item.key[len(folder.key):].split("/", 1)[0] for item in self.store.list(folder)
                 if "/" in item.key[len(folder.key):]}
        if self.triton_model is not None:
            return [str(n) for n in sorted(int(n) for n in names if n.isdigit())]
        return sorted(names)

    def locate(self, run_id: str) -> RunLocation:
        """The location of a new run: its id as folder, or the next Triton version after every stored one."""
        if self.triton_model is None:
            return RunLocation(run_id, self.runs_root.join(run_id))
        version = max((int(n) for n in self.run_names()), default=0) + 1
        return RunLocation(run_id, self.runs_root.join(str(version)), version)

    def read_pointer(self) -> Pointer | None:
        try:
            return Pointer.parse(self.store.get_bytes(self.pointer_uri))
        except ObjectNotFound:
            return None
        except (ValueError, KeyError, TypeError) as error:
            log.warning("%s is unreadable (%s); treating the target as having no current run", self.pointer_uri, error)
            return None

    def current(self) -> StorageURI | None:
        """The run the pointer names, if its manifest still verifies and matches the pointer's digest."""
        pointer = self.read_pointer()
        if pointer is None:
            return None
        uri = self.root.join(pointer.path)
        try:
            check_published(self.store, uri, pointer.manifest_sha256)
        except StorageError as error:
            log.warning("current run %s does not verify: %s", pointer.uri, error)
            return None
        return uri

    def record(self, location: RunLocation, record: RunRecord) -> None:
        """Write a run's ``run.json`` (a failed run's only file)."""
        self.store.put_bytes(record.render(), location.uri.join(RECORD_NAME))

    def promote(self, location: RunLocation, manifest_sha256: str, record: RunRecord) -> Pointer:
        """Verify the run against the digest published, write its run.json, then move the pointer (last).

        Raises ManifestMismatch when the stored run is not what was published; the pointer stays.
        """
        check_published(self.store, location.uri, manifest_sha256)
        self.record(location, record)
        path = location.uri.key[len(self.root.key.rstrip("/")) + 1:]
        pointer = Pointer(location.run_id, path, str(location.uri), manifest_sha256, now_text(), location.version)
        if self.triton_model is not None and location.version is not None:
            policy = f"version_policy: {{ specific: {{ versions: [{location.version}] }} }}\n"
            self.store.put_bytes(((self.triton_config or "") + policy).encode(), self.runs_root.join(TRITON_CONFIG))
        self.store.put_bytes(pointer.render(), self.pointer_uri)
        return pointer

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest runs until at most ``keep`` remain, never the current one; return their names."""
        pointer = self.read_pointer()
        current = pointer.path.rstrip("/").rsplit("/", 1)[-1] if pointer else None
        names = self.run_names()
        deleted: list[str] = []
        for name in names:
            if len(names) - len(deleted) <= keep:
                break
            if name == current:
                continue
            self._delete_run(self.runs_root.join(name))
            deleted.append(name)
        return deleted

    def _delete_run(self, uri: StorageURI) -> None:
        """Delete the record and manifest first, so a run cut short in deletion reads as incomplete."""
        folder = StorageURI(uri.scheme, uri.bucket, uri.key.rstrip("/") + "/")
        items = list(self.store.list(folder))
        first = [i for i in items if i.key.endswith(("/" + RECORD_NAME, "/" + MANIFEST_NAME))]
        for item in first + [i for i in items if i not in first]:
            self.store.delete(item)
        if uri.scheme == "file":
            _remove_empty_dirs(uri)


def current_run(store: Store, root: StorageURI) -> StorageURI | None:
    """The verified current run under a target's folder ``root`` (any layout), or None: what a reader calls."""
    return TargetRuns(store, root).current()


def check_published(store: Store, uri: StorageURI, manifest_sha256: str) -> None:
    """Raise ManifestMismatch unless ``uri``'s manifest has ``manifest_sha256`` and every file verifies."""
    try:
        stored = sha256_bytes(store.get_bytes(uri.join(MANIFEST_NAME)))
    except ObjectNotFound as error:
        raise ManifestMismatch(f"{uri}: no {MANIFEST_NAME}; the run is incomplete") from error
    if stored != manifest_sha256:
        raise ManifestMismatch(f"{uri}: {MANIFEST_NAME} has sha256 {stored[:12]}…, not the {manifest_sha256[:12]}… "
                               "that was published")
    verify(store, uri)


def _remove_empty_dirs(uri: StorageURI) -> None:
    path = uri.local_path
    if not path.is_dir():
        return
    folders = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for folder in [*folders, path]:
        with contextlib.suppress(OSError):  # not empty: a file the store does not list (a .partial) stays
            folder.rmdir()
