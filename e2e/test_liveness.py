"""/healthz fails when the operator stops reconciling, and recovers when it resumes.

The operator runs as in test_operator.py (its own process, the chart's RBAC only), wrapped by
kubeopt_e2e.stall so that a file stalls it on cue: kopf's event loop blocked by a synchronous
call, or every handler thread held inside a reconcile (more resources than threads). The
liveness timeout is 3 s here (180 s by default, the chart's livenessTimeoutSeconds).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.operator import E2E_WORKER_ENV, OperatorProcess, service_account_kubeconfig

from kubeopt.controller.main import HANDLER_THREADS

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
E2E = Path(__file__).resolve().parent
LIVENESS_TIMEOUT = 3


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _health_until(operator: OperatorProcess, code: int, timeout: float = 30.0) -> tuple[int, str, float]:
    """Poll /healthz until it answers ``code``; (code, body, seconds it took)."""
    started = time.monotonic()
    while True:
        status, body = _get(f"{operator.metrics_url}/healthz")
        if status == code:
            return status, body, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"/healthz still {status} {body!r} after {timeout:.0f}s\n{operator.tail()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def kubeconfig(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    path, _ = service_account_kubeconfig(kubectl, helm_offline, CHART, tmp_path_factory.mktemp("live-sa") / "kc")
    return path


@pytest.fixture
def stall(tmp_path: Path) -> Path:
    return tmp_path / "stall"


@pytest.fixture
def operator(kubeconfig: Path, stall: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    pythonpath = os.pathsep.join(p for p in (str(E2E), os.environ.get("PYTHONPATH", "")) if p)
    env = {**E2E_WORKER_ENV, "KUBEOPT_LIVENESS_TIMEOUT": str(LIVENESS_TIMEOUT), "PYTHONPATH": pythonpath,
           "KUBEOPT_E2E_STALL_LOOP": str(stall.with_suffix(".loop")),
           "KUBEOPT_E2E_STALL_RECONCILE": str(stall.with_suffix(".reconcile"))}
    process = OperatorProcess(kubeconfig, tmp_path / "operator.log", env=env, module="kubeopt_e2e.stall")
    process.start()
    try:
        yield process
    finally:
        stall.with_suffix(".loop").unlink(missing_ok=True)
        stall.with_suffix(".reconcile").unlink(missing_ok=True)
        process.stop()


def test_a_blocked_event_loop_fails_liveness_until_it_runs_again(operator: OperatorProcess, stall: Path) -> None:
    healthy = _health_until(operator, 200)

    stall.with_suffix(".loop").touch()
    failing = _health_until(operator, 503)
    readiness = _get(f"{operator.metrics_url}/readyz")
    stall.with_suffix(".loop").unlink()
    recovered = _health_until(operator, 200)

    assert healthy[1] == "ok\n"
    assert failing[1].startswith("kopf's event loop has not run for")
    assert LIVENESS_TIMEOUT - 1 < failing[2] < LIVENESS_TIMEOUT + 10
    assert readiness[0] == 503
    assert recovered[1] == "ok\n"


def test_every_handler_thread_stuck_in_a_reconcile_fails_liveness(
        operator: OperatorProcess, stall: Path, kubectl: Kubectl) -> None:
    namespace = f"e2e-live-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "kubeopt.io/enabled=true")
    resources = [{"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
                  "metadata": {"name": f"stuck-{i}", "namespace": namespace},
                  "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx",
                                     "inputs": [{"name": "x", "shape": [-1, 4]}]},
                           "targets": [{"name": "ort", "backend": "onnxruntime", "precision": "fp32"}],
                           "output": {"uri": f"s3://artifacts/{namespace}/{i}"}, "resources": {"gpu": 0}}}
                 for i in range(HANDLER_THREADS + 4)]
    try:
        stall.with_suffix(".reconcile").touch()
        kubectl.apply(yaml.safe_dump_all(resources))
        failing = _health_until(operator, 503, timeout=60)
        stall.with_suffix(".reconcile").unlink()
        recovered = _health_until(operator, 200, timeout=60)
        # Health comes back when one handler thread is free, which races the released reconciles'
        # Job creations by milliseconds; the Jobs must follow.
        deadline, jobs = time.monotonic() + 30, []
        while not jobs and time.monotonic() < deadline:
            jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
            time.sleep(0 if jobs else 0.5)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    assert failing[1].startswith("no handler thread has been free for")
    assert recovered[1] == "ok\n"
    assert jobs  # reconciling resumed where it stopped
