"""Parse storage URIs: s3://bucket/key, file:///path, pvc://claim/path (a mounted path) or a bare path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from kubeopt.storage.errors import StorageError

PVC_MOUNT_ROOT = Path("/mnt/pvc")


@dataclass(frozen=True)
class StorageURI:
    scheme: str  # "s3" or "file"
    bucket: str  # s3 only
    key: str  # s3 key, or an absolute local path for file

    def join(self, *parts: str) -> StorageURI:
        """Return a URI for ``parts`` below this one."""
        tail = "/".join(p.strip("/") for p in parts if p)
        base = self.key.rstrip("/")
        key = f"{base}/{tail}" if base else tail
        return StorageURI(self.scheme, self.bucket, key)

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return f"file://{self.key}"

    @property
    def local_path(self) -> Path:
        if self.scheme != "file":
            raise StorageError(f"{self} is not a local path")
        return Path(self.key)


def parse_uri(text: str, *, base_dir: Path | None = None) -> StorageURI:
    """Parse ``text``; relative paths resolve against ``base_dir`` (default: the working directory).

    Raises StorageError naming the URI and the schemes that are allowed.
    """
    if not text:
        raise StorageError("empty storage URI: use s3://bucket/key, file:///path or a path")
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"{text}: s3 URI needs a bucket, as in s3://bucket/prefix")
        return StorageURI("s3", parsed.netloc, parsed.path.lstrip("/"))
    if parsed.scheme == "file":
        return StorageURI("file", "", str(Path(unquote(parsed.netloc + parsed.path)).resolve()))
    if parsed.scheme == "pvc":
        return StorageURI("file", "", str(PVC_MOUNT_ROOT / parsed.netloc / parsed.path.lstrip("/")))
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" is not a scheme
        raise StorageError(f"{text}: unsupported scheme {parsed.scheme!r}; use s3://, file://, pvc:// or a path")
    path = Path(text)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return StorageURI("file", "", str(path.resolve()))
