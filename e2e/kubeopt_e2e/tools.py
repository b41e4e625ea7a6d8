"""Where the e2e binaries are: ``$KUBEOPT_E2E_BIN_DIR``, or what ``e2e/build.sh`` built."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__all__ = ["BINARIES", "BUILD_SCRIPT", "bin_dir", "binary"]

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build.sh"
BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager", "minio", "helm")


@functools.cache
def bin_dir() -> Path:
    """The directory holding :data:`BINARIES`; runs ``e2e/build.sh`` at most once per process.

    ``KUBEOPT_E2E_BIN_DIR`` names a ready directory and skips the build. Otherwise build.sh
    reuses its cache (``$KUBEOPT_E2E_BIN``, default ``~/.cache/kubeopt-e2e/bin``) or builds,
    which takes 10-25 minutes on two cores the first time; its progress goes to stderr.
    """
    given = os.environ.get("KUBEOPT_E2E_BIN_DIR")
    if given:
        path = Path(given)
    else:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"{BUILD_SCRIPT} printed no bin directory")
        path = Path(lines[-1])
    missing = [name for name in BINARIES if not (path / name).is_file()]
    if missing:
        raise RuntimeError(f"{path} lacks {', '.join(missing)}; run {BUILD_SCRIPT}")
    return path


def binary(name: str) -> Path:
    """Full path of one binary, e.g. ``binary("helm")``."""
    return bin_dir() / name
