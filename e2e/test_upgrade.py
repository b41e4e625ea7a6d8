"""The CRD upgrade path a platform team follows: Helm installs crds/ once and never upgrades it.

The chart is installed with ``helm install`` (admission policies off: they are cluster-wide and
would bind the other e2e tests). A second chart version adds an optional field to the CRD.
``helm upgrade`` alone leaves the served CRD as it was (the control); the README's step, a
server-side apply of the chart's crds/ before ``helm upgrade``, serves the new field: a resource
that sets it keeps it. The original CRD is put back afterwards (the session's other tests use it).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRDS = ROOT / "crds"
CRD_NAME = "modeloptimizations.kubeopt.io"
NEW_FIELD = "upgradeProbe"
RELEASE = "kubeopt-upgrade"


def _served_spec_fields(kubectl: Kubectl) -> set[str]:
    crd = kubectl.json("get", "crd", CRD_NAME)
    return set(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


def _next_chart(tmp: Path) -> Path:
    """The chart's next version: its CRD gains an optional spec field."""
    chart = tmp / "kubeopt"
    shutil.copytree(CHART, chart)
    crd_file = chart / "crds" / f"{CRD_NAME}.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"][NEW_FIELD] = {"type": "string", "description": "A field the next chart version adds."}
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return chart


@pytest.fixture
def installed(kubectl: Kubectl, helm: Helm) -> Iterator[str]:
    kubectl.install_crd(CRDS / f"{CRD_NAME}.yaml", CRD_NAME)
    namespace = f"e2e-upgrade-{uuid.uuid4().hex[:6]}"
    helm("install", RELEASE, str(CHART), "--namespace", namespace, "--create-namespace",
         "--set", "admission.enabled=false")
    try:
        yield namespace
    finally:
        helm("uninstall", RELEASE, "--namespace", namespace, check=False)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))  # the session's CRD again
        kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


def _resource(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "upgraded", "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx",
                               "inputs": [{"name": "x", "shape": [-1, 4]}]},
                     "targets": [{"name": "ort", "backend": "onnxruntime"}],
                     "output": {"uri": f"s3://out/{namespace}"}, NEW_FIELD: "served"}}


def test_a_crd_change_is_served_after_the_readmes_upgrade_steps_and_not_by_helm_upgrade_alone(
        kubectl: Kubectl, helm: Helm, installed: str, tmp_path: Path) -> None:
    chart = _next_chart(tmp_path)

    # helm upgrade alone: Helm never touches crds/ after the first install.
    helm("upgrade", RELEASE, str(chart), "--namespace", installed, "--set", "admission.enabled=false")
    after_helm_alone = _served_spec_fields(kubectl)
    # The README's steps: server-side apply of the chart's crds/, then helm upgrade.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(chart / "crds"))
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    helm("upgrade", RELEASE, str(chart), "--namespace", installed, "--set", "admission.enabled=false")
    after_readme = _served_spec_fields(kubectl)
    deadline = time.monotonic() + 30  # the API server swaps its schema for new writes shortly after
    while True:
        kubectl.apply(yaml.safe_dump(_resource(installed)))
        kept = kubectl.json("get", "mopt", "upgraded", "-n", installed)["spec"].get(NEW_FIELD)
        if kept or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    history = kubectl.json("get", "secrets", "-n", installed, "-l", f"owner=helm,name={RELEASE}")["items"]

    assert NEW_FIELD not in after_helm_alone
    assert NEW_FIELD in after_readme
    assert kept == "served"
    assert len(history) == 3  # install and two upgrades
