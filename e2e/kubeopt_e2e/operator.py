"""The operator under test: ``kubeopt operator`` as a process, with the chart's RBAC only.

``service_account_kubeconfig`` renders the Helm chart, applies its ServiceAccount and RBAC
objects (nothing else), asks the TokenRequest API for a token and writes a kubeconfig with
it, so the operator can do exactly what the chart grants. ``admission_policies`` applies the
chart's ValidatingAdmissionPolicies and bindings and waits until the API server enforces them.
``token_kubeconfig`` gives any ServiceAccount its own kubeconfig (a distinct identity).
``OperatorProcess`` starts, stops and restarts the operator and knows its metrics port.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.procs import LOOPBACK, Process, free_port, log_tail, wait_until

__all__ = ["E2E_VALUES", "OperatorProcess", "admission_policies", "chart_documents", "rbac_documents",
           "service_account_kubeconfig", "token_kubeconfig"]

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
#: The worker image name e2e Jobs get; the fake kubelet runs the local worker for it.
E2E_WORKER_IMAGE = "kubeopt-worker:e2e"
#: Chart values of the e2e install: the chart's worker image is the e2e one (so admission allows it).
E2E_VALUES = (f"workerImages.default={E2E_WORKER_IMAGE}",)


def chart_documents(helm: Helm, chart: Path, release: str, namespace: str, kinds: set[str],
                    values: tuple[str, ...] = E2E_VALUES) -> list[dict[str, Any]]:
    """The chart's objects of ``kinds``, as ``helm template`` renders them with ``--set values``."""
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = helm("template", release, str(chart), "--namespace", namespace, *sets).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") in kinds]


def rbac_documents(helm: Helm, chart: Path, release: str, namespace: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC objects, as ``helm template`` renders them."""
    return chart_documents(helm, chart, release, namespace, RBAC_KINDS)


def token_kubeconfig(kubectl: Kubectl, account: str, namespace: str, out: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/account`` (a bound token)."""
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
    return out


def service_account_kubeconfig(kubectl: Kubectl, helm: Helm, chart: Path, out: Path,
                               release: str = "kubeopt", namespace: str = "kubeopt-system") -> tuple[Path, str]:
    """Apply the chart's RBAC, return (kubeconfig with a bound token, service account name)."""
    kubectl("create", "namespace", namespace, check=False)
    documents = rbac_documents(helm, chart, release, namespace)
    kubectl.apply(yaml.safe_dump_all(documents))
    account = next(d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount")
    return token_kubeconfig(kubectl, account, namespace, out), f"system:serviceaccount:{namespace}:{account}"


@contextmanager
def admission_policies(kubectl: Kubectl, helm: Helm, chart: Path, release: str = "kubeopt",
                       namespace: str = "kubeopt-system", timeout: float = 60.0) -> Iterator[list[dict[str, Any]]]:
    """Apply the chart's admission policies and bindings; delete them on exit.

    The API server loads policies through an informer, so this waits until each policy refuses
    a probe in the ``default`` namespace (which did not opt in), tried with a server dry run:
    a ModelOptimization as admin, and a Job as the operator (impersonated, with system:masters
    so that RBAC is not what refuses it)."""
    documents = chart_documents(helm, chart, release, namespace, POLICY_KINDS)
    operator = next(f"system:serviceaccount:{namespace}:{d['metadata']['name']}"
                    for d in chart_documents(helm, chart, release, namespace, {"ServiceAccount"}))
    kubectl.apply(yaml.safe_dump_all(documents))
    try:
        deadline = time.monotonic() + timeout
        while not (_refused(kubectl, PROBE_OPTIMIZATION) and _refused(kubectl, PROBE_JOB, f"--as={operator}",
                                                                      "--as-group=system:masters")):
            if time.monotonic() > deadline:
                raise AssertionError(f"admission policies not enforced after {timeout:.0f}s")
            time.sleep(0.5)
        yield documents
    finally:
        for doc in reversed(documents):
            kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False)


PROBE_OPTIMIZATION = {
    "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
    "metadata": {"name": "admission-probe", "namespace": "default"},
    "spec": {"model": {"uri": "s3://m/m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 4]}]},
             "targets": [{"name": "ort", "backend": "onnxruntime"}], "output": {"uri": "s3://a/p"}},
}
PROBE_JOB = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "admission-probe", "namespace": "default"},
    "spec": {"template": {"spec": {"restartPolicy": "Never",
                                   "containers": [{"name": "probe", "image": E2E_WORKER_IMAGE}]}}},
}


def _refused(kubectl: Kubectl, probe: dict[str, Any], *args: str) -> bool:
    result = kubectl("create", "--dry-run=server", "-f", "-", *args, input=yaml.safe_dump(probe), check=False)
    return result.returncode != 0 and "has not opted in" in result.stderr


class OperatorProcess:
    """``python -m kubeopt.cli operator`` against ``kubeconfig``; its log in ``log``."""

    def __init__(self, kubeconfig: Path, log: Path, env: Mapping[str, str] | None = None,
                 module: str = "kubeopt.cli") -> None:
        """``module``: what ``python -m`` runs with ``operator ...`` (kubeopt_e2e.stall wraps the CLI)."""
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = dict(env or {})
        self.module = module
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
            "operator", [sys.executable, "-m", self.module, "operator", "--metrics-port", str(self.metrics_port)],
            self.log, env=env)
        wait_until("operator /readyz", self._ready, process=self._process, timeout=timeout)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def running(self) -> bool:
        """Whether the process this object last started is still alive (never restarted by itself)."""
        return self._process is not None and self._process.running()

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


E2E_WORKER_ENV = {"KUBEOPT_WORKER_IMAGE": E2E_WORKER_IMAGE}


@contextmanager
def running_operator(kubeconfig: Path, log: Path) -> Iterator[OperatorProcess]:
    """The operator started for e2e and stopped on exit."""
    process = OperatorProcess(kubeconfig, log, env=E2E_WORKER_ENV)
    process.start()
    try:
        yield process
    finally:
        process.stop()
