"""The helm that e2e/build.sh builds, for unit tests that render the chart without a cluster.

Found through ``$KUBEOPT_E2E_BIN_DIR``, then ``helm`` on ``$PATH``, then the newest build under
``~/.cache/kubeopt-e2e/bin`` (``$KUBEOPT_E2E_BIN``). Without one the tests that need it skip,
except under ``CI=true``: there a missing helm fails them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubeopt"


def find_helm() -> Path | None:
    bin_dir = os.environ.get("KUBEOPT_E2E_BIN_DIR")
    if bin_dir and (Path(bin_dir) / "helm").is_file():
        return Path(bin_dir) / "helm"
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    cache = Path(os.environ.get("KUBEOPT_E2E_BIN") or Path.home() / ".cache" / "kubeopt-e2e" / "bin")
    built = sorted(cache.glob("*/helm"), key=lambda p: p.stat().st_mtime, reverse=True) if cache.is_dir() else []
    return built[0] if built else None


def require_helm() -> Path:
    """helm's path; skips the test without one, fails it under CI=true."""
    helm = find_helm()
    if helm is not None:
        return helm
    message = "no helm: build it with e2e/build.sh or set KUBEOPT_E2E_BIN_DIR"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the chart's tests may not skip)")
    pytest.skip(message)


class Renderer:
    """``helm template`` of the chart with a values file; helm's own state in a temp dir."""

    def __init__(self, helm: Path, home: Path) -> None:
        self.helm = helm
        self.home = home
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(home / "no-cluster")}

    def run(self, values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        values_file = self.home / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        return subprocess.run([str(self.helm), "template", "kubeopt", str(CHART), "--namespace", "kubeopt",
                               "-f", str(values_file), *args],
                              capture_output=True, text=True, env=self.env, timeout=60, check=False)

    def documents(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """The rendered objects; fails the test with helm's message when it refuses ``values``."""
        proc = self.run(values)
        assert proc.returncode == 0, f"helm template refused {values}:\n{proc.stderr}"
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    def refusal(self, values: dict[str, Any]) -> str:
        """helm's error for ``values``; fails the test when helm renders them."""
        proc = self.run(values)
        assert proc.returncode != 0, f"helm template rendered {values}"
        return proc.stderr
