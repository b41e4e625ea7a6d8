"""Namespace users get ModelOptimizations through the built-in roles, by aggregation of the chart's user roles.

The chart's ``<release>-view`` and ``<release>-edit`` ClusterRoles carry the aggregation labels;
kube-controller-manager's clusterrole-aggregation controller folds them into the bootstrap
``view``, ``edit`` and ``admin`` roles. Users are impersonated (``--as``) with RoleBindings to
the built-in roles only, in one namespace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.operator import chart_documents

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
EDITOR, VIEWER = "alice@example.com", "bob@example.com"


def _resource(namespace: str, name: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 4]}]},
                 "targets": [{"name": "ort", "backend": "onnxruntime", "precision": "fp32"}],
                 "output": {"uri": f"s3://artifacts/{namespace}/{name}"}, "resources": {"gpu": 0}}})


def _can(kubectl: Kubectl, user: str, verb: str, namespace: str) -> bool:
    answer = kubectl("auth", "can-i", verb, "modeloptimizations.kubeopt.io", "-n", namespace, "--as", user, check=False)
    return answer.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, helm_offline: Helm) -> Iterator[str]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    roles = [d for d in chart_documents(helm_offline, CHART, "kubeopt", "kubeopt-system", {"ClusterRole"})
             if d["metadata"]["name"] in ("kubeopt-view", "kubeopt-edit")]
    assert len(roles) == 2
    kubectl.apply(yaml.safe_dump_all(roles))
    name = f"e2e-roles-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("create", "rolebinding", "alice-edit", "--clusterrole=edit", f"--user={EDITOR}", "-n", name)
    kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", f"--user={VIEWER}", "-n", name)
    deadline = time.monotonic() + 30
    while not (_can(kubectl, EDITOR, "create", name) and _can(kubectl, VIEWER, "list", name)):
        assert time.monotonic() < deadline, "the built-in roles never gained the chart's rules (aggregation)"
        time.sleep(0.3)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_user_with_edit_creates_changes_and_deletes_a_modeloptimization(kubectl: Kubectl, namespace: str) -> None:
    created = kubectl.apply(_resource(namespace, "by-alice"), "--as", EDITOR)
    patched = kubectl("patch", "mopt", "by-alice", "-n", namespace, "--as", EDITOR, "--type=merge",
                      "-p", '{"spec": {"suspend": true}}')
    status = kubectl("patch", "mopt", "by-alice", "-n", namespace, "--as", EDITOR, "--type=merge",
                     "--subresource=status", "-p", '{"status": {"phase": "Succeeded"}}', check=False)
    deleted = kubectl("delete", "mopt", "by-alice", "-n", namespace, "--as", EDITOR, "--wait=false")

    assert "created" in created.stdout and "patched" in patched.stdout and "deleted" in deleted.stdout
    assert status.returncode != 0 and "forbidden" in status.stderr  # status is the operator's


def test_a_user_with_view_reads_a_modeloptimization_and_may_not_write_one(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(_resource(namespace, "read-me"))

    listed = kubectl.json("get", "mopt", "-n", namespace, "--as", VIEWER)
    created = kubectl("apply", "-f", "-", "--as", VIEWER, input=_resource(namespace, "by-bob"), check=False)
    deleted = kubectl("delete", "mopt", "read-me", "-n", namespace, "--as", VIEWER, check=False)

    assert [item["metadata"]["name"] for item in listed["items"]] == ["read-me"]
    assert created.returncode != 0 and "forbidden" in created.stderr
    assert deleted.returncode != 0 and "forbidden" in deleted.stderr
    assert not _can(kubectl, VIEWER, "update", namespace)


def test_a_user_without_a_role_in_the_namespace_sees_nothing(kubectl: Kubectl, namespace: str) -> None:
    assert not _can(kubectl, "mallory@example.com", "list", namespace)
