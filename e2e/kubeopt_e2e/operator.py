"""The operator under test: ``kubeopt operator`` as a process, with the chart's RBAC only.

``service_account_kubeconfig`` renders the Helm chart, applies its ServiceAccount and RBAC
objects (nothing else), asks the TokenRequest API for a token and writes a kubeconfig with
it, so the operator can do exactly what the chart grants. ``OperatorProcess`` starts, stops
and restarts the operator and knows its metrics port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.procs import LOOPBACK, free_port

__all__ = ["OperatorProcess", "rbac_documents", "service_account_kubeconfig"]

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def rbac_documents(helm: Helm, chart: Path, release: str, namespace: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC objects, as ``helm template`` renders them."""
    rendered = helm("template", release, str(chart), "--namespace", namespace).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") in RBAC_KINDS]


def service_account_kubeconfig(kubectl: Kubectl, helm: Helm, chart: Path, out: Path,
                               release: str = "kubeopt", namespace: str = "kubeopt-system") -> tuple[Path, str]:
    """Apply the chart's RBAC, return (kubeconfig with a bound token, service account name)."""
    kubectl("create", "namespace", namespace, check=False)
    documents = rbac_documents(helm, chart, release, namespace)
    kubectl.apply(yaml.safe_dump_all(documents))
    account = next(d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount")
    token = kubectl("create", "token", account, "-n", namespace, "--duration", "2h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": account}}],
        "current-context": "e2e",
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out, f"system:serviceaccount:{namespace}:{account}"


class OperatorProcess:
    """``python -m kubeopt.cli operator`` against ``kubeconfig``; its log in ``log``."""

    def __init__(self, kubeconfig: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}"

    def start(self, timeout: float = 60.0) -> None:
        if self._popen is not None:
            raise RuntimeError("operator already running")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.log.parent), **self.env}
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "kubeopt.cli", "operator", "--metrics-port", str(self.metrics_port)],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._popen.poll() is not None:
                raise RuntimeError(f"operator exited with {self._popen.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"operator not ready after {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, grace: float = 20.0) -> None:
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._popen = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Stop it the hard way, as a node failure would."""
        if self._popen is not None:
            self._popen.kill()
            self._popen.wait()
        self.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


#: The worker image name e2e Jobs get; the fake kubelet runs the local worker for it.
E2E_WORKER_ENV = {"KUBEOPT_WORKER_IMAGE": "kubeopt-worker:e2e"}


@contextmanager
def running_operator(kubeconfig: Path, log: Path) -> Iterator[OperatorProcess]:
    """The operator started for e2e and stopped on exit."""
    process = OperatorProcess(kubeconfig, log, env=E2E_WORKER_ENV)
    process.start()
    try:
        yield process
    finally:
        process.stop()
