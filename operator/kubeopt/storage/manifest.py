"""Manifests: the sha256 and size of every file of an artifact, written last.

A reader trusts an artifact only when ``manifest.json`` exists and every file it lists is
present with the same size and digest. Publishing writes the manifest after every other
file, so a crash mid-publish leaves an artifact without a manifest: visibly incomplete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubeopt.storage.errors import ManifestMismatch, ObjectNotFound
from kubeopt.storage.store import Store
from kubeopt.storage.uri import StorageURI

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, "/" separated
    sha256: str
    size: int


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entries_for(root: Path) -> list[FileEntry]:
    """Describe every file under ``root`` (sorted, manifest excluded)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return [FileEntry(p.relative_to(root).as_posix(), sha256_file(p), p.stat().st_size) for p in files]


def render_manifest(entries: list[FileEntry], metadata: Mapping[str, object]) -> bytes:
    body = {
        "version": MANIFEST_VERSION,
        "metadata": dict(metadata),
        "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries],
    }
    return json.dumps(body, indent=2, sort_keys=True).encode()


def verify(store: Store, prefix: StorageURI) -> list[FileEntry]:
    """Check an artifact against its manifest and return its entries.

    Raises ManifestMismatch when the manifest is missing or a file is missing or differs.
    """
    try:
        manifest = json.loads(store.get_bytes(prefix.join(MANIFEST_NAME)))
    except ObjectNotFound as error:
        raise ManifestMismatch(f"{prefix}: no {MANIFEST_NAME}; the artifact is incomplete") from error
    entries = [FileEntry(f["path"], f["sha256"], int(f["size"])) for f in manifest["files"]]
    for entry in entries:
        try:
            data = store.get_bytes(prefix.join(entry.path))
        except ObjectNotFound as error:
            raise ManifestMismatch(f"{prefix}: {entry.path} is listed in the manifest but missing") from error
        if len(data) != entry.size or sha256_bytes(data) != entry.sha256:
            raise ManifestMismatch(f"{prefix}: {entry.path} does not match its manifest digest")
    return entries
