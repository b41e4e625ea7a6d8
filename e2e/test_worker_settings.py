"""The chart's worker settings reach the Jobs the operator creates, through its RBAC and its admission policy.

The operator runs with the environment the chart's Deployment gives it (rendered by helm with
the settings below), as the chart's ServiceAccount, with the chart's admission policies in
force. In one namespace the worker ServiceAccount does not exist yet (the operator creates it
with the IRSA annotation); in another a plain one exists already (the operator patches the
annotation on, which the chart's RBAC must allow). Each Job carries the pod annotations, the
priority class, the pull Secret and the extra variable, and the policy admitted it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.operator import (
    E2E_WORKER_IMAGE,
    OperatorProcess,
    admission_policies,
    service_account_kubeconfig,
)

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
ROLE_ARN = "arn:aws:iam::111122223333:role/kubeopt-worker"
PRIORITY_CLASS = f"kubeopt-e2e-batch-{uuid.uuid4().hex[:6]}"
# --set-string: annotation and env values are strings (the values schema refuses false and 1).
VALUES = ("--set", f"workerImages.default={E2E_WORKER_IMAGE}",
          "--set", f"workerServiceAccount.annotations.eks\\.amazonaws\\.com/role-arn={ROLE_ARN}",
          "--set-string", "jobs.podAnnotations.sidecar\\.istio\\.io/inject=false",
          "--set", f"jobs.priorityClassName={PRIORITY_CLASS}",
          "--set", "jobs.env[0].name=HF_HUB_OFFLINE", "--set-string", "jobs.env[0].value=1",
          "--set", "imagePullSecrets[0].name=regcred")


def _chart_env(helm: Helm) -> dict[str, str]:
    """The operator container's environment, as the chart renders it with VALUES."""
    rendered = helm("template", "kubeopt", str(CHART), "--namespace", "kubeopt-system", *VALUES).stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.fixture(scope="module")
def operator(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[OperatorProcess]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    kubectl.apply(yaml.safe_dump({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                  "metadata": {"name": PRIORITY_CLASS}, "value": 100}))
    home = tmp_path_factory.mktemp("worker-settings")
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART, home / "kubeconfig")
    process = OperatorProcess(kubeconfig, home / "operator.log", env=_chart_env(helm_offline))
    with admission_policies(kubectl, helm_offline, CHART):
        process.start()
        try:
            yield process
        finally:
            process.stop()
    kubectl("delete", "priorityclass", PRIORITY_CLASS, "--ignore-not-found", check=False)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"e2e-worker-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "kubeopt.io/enabled=true")
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def _optimize(kubectl: Kubectl, namespace: str, operator: OperatorProcess) -> dict[str, Any]:
    body = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "settings", "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx",
                               "inputs": [{"name": "x", "shape": [-1, 4]}]},
                     "targets": [{"name": "ort", "backend": "onnxruntime"}],
                     "output": {"uri": f"s3://artifacts/{namespace}"}, "resources": {"gpu": 0}}}
    kubectl.apply(yaml.safe_dump(body))
    deadline = time.monotonic() + 60
    while True:
        jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
        if jobs:
            return dict(jobs[0])
        status = kubectl.json("get", "mopt", "settings", "-n", namespace).get("status", {})
        if time.monotonic() > deadline:
            raise AssertionError(f"no Job after 60 s; status {status}\n{operator.tail()}")
        time.sleep(0.5)


def _assert_the_pod_settings(job: dict[str, Any]) -> None:
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["spec"]["priorityClassName"] == PRIORITY_CLASS
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in template["spec"]["containers"][0]["env"]
    assert template["spec"]["serviceAccountName"] == "kubeopt-worker"


def test_a_new_namespace_gets_an_annotated_worker_account_and_a_job_with_the_charts_pod_settings(
        kubectl: Kubectl, operator: OperatorProcess, namespace: str) -> None:
    job = _optimize(kubectl, namespace, operator)

    account = kubectl.json("get", "serviceaccount", "kubeopt-worker", "-n", namespace)

    _assert_the_pod_settings(job)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    assert account["automountServiceAccountToken"] is False


def test_an_existing_worker_account_gets_the_annotation_patched_on(
        kubectl: Kubectl, operator: OperatorProcess, namespace: str) -> None:
    kubectl("create", "serviceaccount", "kubeopt-worker", "-n", namespace)

    job = _optimize(kubectl, namespace, operator)
    account = kubectl.json("get", "serviceaccount", "kubeopt-worker", "-n", namespace)

    _assert_the_pod_settings(job)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
