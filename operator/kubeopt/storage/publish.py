"""Atomic publishing of a local artifact folder: every file first, manifest.json last."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubeopt.storage.manifest import MANIFEST_NAME, entries_for, render_manifest, sha256_bytes
from kubeopt.storage.store import Store
from kubeopt.storage.uri import StorageURI


@dataclass(frozen=True)
class Published:
    uri: StorageURI
    manifest_sha256: str
    size: int
    files: int


def publish_folder(store: Store, source: Path, dest: StorageURI, metadata: Mapping[str, object]) -> Published:
    """Upload every file under ``source`` to ``dest``, then its manifest.

    A stale manifest at ``dest`` is deleted before the first upload, so that a reader never
    pairs an old manifest with new files while the publish is in flight.
    """
    store.delete(dest.join(MANIFEST_NAME))
    entries = entries_for(source)
    for entry in entries:
        store.put_file(source / entry.path, dest.join(entry.path))
    manifest = render_manifest(entries, metadata)
    store.put_bytes(manifest, dest.join(MANIFEST_NAME))
    return Published(dest, sha256_bytes(manifest), sum(e.size for e in entries) + len(manifest), len(entries))
