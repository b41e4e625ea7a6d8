"""Command line clients for e2e tests: the system kubectl and the helm built by build.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["KUBECTL", "Helm", "Kubectl", "uses_external_cluster"]

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def uses_external_cluster() -> bool:
    """True when tests run against ``$KUBECONFIG`` rather than the control plane built here."""
    return os.environ.get("KUBEOPT_E2E_USE_KUBECONFIG") == "1" and bool(os.environ.get("KUBECONFIG"))


class Kubectl:
    """Runs the system kubectl against one kubeconfig: ``kubectl("get", "ns")``."""

    def __init__(self, kubeconfig: Path, executable: str = KUBECTL) -> None:
        self.kubeconfig = kubeconfig
        self.executable = executable

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.executable, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        """``kubectl <args> -o json``, decoded."""
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", *args, input=manifest)

    def install_crd(self, path: Path, name: str, timeout: float = 60.0) -> None:
        """Apply a CRD and wait until it is Established.

        ``kubectl wait`` fails at once ("conditions accessor error") while the CRD's status is not
        written yet, so the wait is retried until ``timeout``."""
        self("apply", "-f", str(path))
        deadline = time.monotonic() + timeout
        while True:
            waited = self("wait", "--for=condition=Established", f"crd/{name}", "--timeout=5s", check=False)
            if waited.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not Established after {timeout}s: {waited.stderr.strip()}")
            time.sleep(0.2)


class Helm:
    """Runs the helm built by build.sh against one kubeconfig, with its state in a temp dir."""

    def __init__(self, executable: Path, kubeconfig: Path, home: Path) -> None:
        self.executable = executable
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.executable), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc
