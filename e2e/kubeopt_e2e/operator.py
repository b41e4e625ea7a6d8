"""The operator under test: ``kubeopt operator`` as a process, with the chart's RBAC only.

``service_account_kubeconfig`` renders the Helm chart, applies its ServiceAccount and RBAC
objects (nothing else), asks the TokenRequest API for a token and writes a kubeconfig with
it, so the operator can do exactly what the chart grants. ``OperatorProcess`` starts, stops
and restarts the operator and knows its metrics port.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.procs import LOOPBACK, Process, free_port, log_tail, wait_until

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
        self._process: Process | None = None

    @property
    def pid(self) -> int:
        """The running operator's process id (to read its memory in /proc)."""
        if self._process is None:
            raise RuntimeError("operator not running")
        return int(self._process.popen.pid)

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}"

    def start(self, timeout: float = 60.0) -> None:
        if self._process is not None:
            raise RuntimeError("operator already running")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.log.parent), **self.env}
        if os.environ.get("PYTHONPATH"):  # run the checkout under test (a git worktree), not the venv's
            env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
        self._process = Process(
            "operator", [sys.executable, "-m", "kubeopt.cli", "operator", "--metrics-port", str(self.metrics_port)],
            self.log, env=env)
        wait_until("operator /readyz", self._ready, process=self._process, timeout=timeout)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, grace: float = 20.0) -> None:
        if self._process is not None:
            self._process.stop(grace)
            self._process = None

    def kill(self) -> None:
        """Stop it the hard way, as a node failure would."""
        if self._process is not None:
            self._process.popen.kill()
            self._process.popen.wait()
        self.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 60) -> str:
        return log_tail(self.log, lines)


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
