"""The CRD on a real API server teaches (kubectl explain shows defaults and types) and guards (admission refuses).

The CRD is the generated one (crds/); nothing else is installed, so every refusal here comes
from the API server's own schema and CEL validation, at ``kubectl apply --dry-run=server``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeopt_e2e.clients import Kubectl

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    deadline = time.monotonic() + 60  # the API server publishes an established CRD's OpenAPI a little later
    while kubectl("explain", "modeloptimization.spec.resources.gpu", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the CRD's OpenAPI schema was never published"
        time.sleep(0.5)
    name = f"e2e-explain-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(("field", "shown"), [
    ("spec.resources.gpu", "Default: 1."),
    ("spec.resources.gpu", "0 for a CPU-only cluster"),
    ("spec.calibration.samples", "Default: 512."),
    ("spec.calibration.method", "Unset: each backend's default (tensorrt: entropy;"),
    ("spec.benchmark.batchSizes", "Default: [1, 8, 32]."),
    ("spec.targets.precision", "Default: fp32."),
    ("spec.resources.memory", "a Kubernetes quantity: 16Gi or 16G"),
])
def test_kubectl_explain_reads_defaults_and_types_back_from_the_api_server(
        kubectl: Kubectl, namespace: str, field: str, shown: str) -> None:
    explained = kubectl("explain", f"modeloptimization.{field}").stdout

    assert shown in " ".join(explained.split())


def _apply(kubectl: Kubectl, namespace: str, **changes: Any) -> tuple[int, str]:
    spec: dict[str, Any] = {
        "model": {"uri": "s3://models/m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 4]}]},
        "targets": [{"name": "ort", "backend": "onnxruntime"}],
        "output": {"uri": "s3://out/m"},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    body = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "explained", "namespace": namespace}, "spec": spec}
    proc = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(body), check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("resources", [{"cpu": 4, "memory": "16Gi"}, {"cpu": "500m", "memory": "16G"}])
def test_cpu_and_memory_quantities_are_admitted_as_numbers_or_strings(
        kubectl: Kubectl, namespace: str, resources: dict[str, Any]) -> None:
    code, output = _apply(kubectl, namespace, resources={"gpu": 0, **resources})

    assert code == 0, output


@pytest.mark.parametrize(("changes", "message"), [
    ({"resources.memory": "16GB"}, 'spec.resources.memory: Invalid value: "16GB": must be a positive Kubernetes '
                                   "quantity"),
    ({"resources.cpu": 0}, "spec.resources.cpu: Invalid value"),
    ({"benchmark.batchSizes": [1, 0]}, "spec.benchmark.batchSizes[1]: Invalid value: 0"),
    ({"model.uri": "gs://models/m.onnx"}, 'spec.model.uri: Invalid value: "gs://models/m.onnx": '
                                          "unsupported URI scheme"),
    ({"output.uri": "https://example.com/out"}, "spec.output.uri: Invalid value: \"https://example.com/out\": "
                                                "unsupported URI scheme"),
    ({"calibration.uri": "pvc://data/calib.npz"}, 'spec.calibration.uri: Invalid value: "pvc://data/calib.npz": '
                                                 "pvc:// is not mounted by kubeopt Jobs"),
])
def test_the_api_server_refuses_what_would_fail_later_and_says_why(
        kubectl: Kubectl, namespace: str, changes: dict[str, Any], message: str) -> None:
    code, output = _apply(kubectl, namespace, **changes)

    assert code != 0
    assert message in output, output
