"""What the CRD teaches and guards without a model file: defaults in kubectl explain, quantities, batch sizes, URIs.

The defaults live in the pydantic models; the CRD states each in the field's description
(``kubectl explain`` prints it). The walk below compares every model field's default with the
generated description, so the two cannot drift. e2e/test_explain.py reads them back from a
real API server and sends the bad values through its admission.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from kubeopt.api.crd import build_crd
from kubeopt.api.spec import ModelOptimizationSpec

SPEC = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _defaults(model: type[BaseModel], node: dict[str, Any], path: str) -> list[tuple[str, Any, str]]:
    """(path, the model's default, the CRD description) of every field with a shown default."""
    found: list[tuple[str, Any, str]] = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        child = node["properties"][wire]
        annotation = info.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is not None:
            target = child["items"] if child.get("type") == "array" else child
            found += _defaults(nested, target, f"{path}.{wire}")
        if info.is_required():
            continue
        default = info.get_default(call_default_factory=True)
        if default is None or isinstance(default, BaseModel) or default in ([], {}):
            continue
        found.append((f"{path}.{wire}", default, child.get("description", "")))
    return found


def _shown(value: Any) -> str:
    value = value.value if isinstance(value, Enum) else value
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).removesuffix(
        "\n...\n").strip()


def test_every_default_of_the_models_is_stated_in_the_crd_for_kubectl_explain() -> None:
    defaults = _defaults(ModelOptimizationSpec, SPEC, "spec")

    missing = [(path, value) for path, value, text in defaults if not text.endswith(f"Default: {_shown(value)}.")]

    assert missing == []
    assert ("spec.resources.gpu", 1) in [(p, v) for p, v, _ in defaults]
    assert {"spec.calibration.samples", "spec.calibration.batchSize",
            "spec.benchmark.batchSizes"} <= {p for p, _, _ in defaults}


def _spec(**changes: Any) -> dict[str, Any]:
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
    return spec


@pytest.mark.parametrize(("field", "value", "wire"), [
    ("cpu", 4, "4"), ("cpu", "500m", "500m"), ("cpu", "1.5", "1.5"), ("memory", "16Gi", "16Gi"),
    ("memory", "16G", "16G"), ("memory", "1e9", "1e9"),
])
def test_cpu_and_memory_are_kubernetes_quantities_given_as_numbers_or_strings(field: str, value: Any,
                                                                               wire: str) -> None:
    spec = ModelOptimizationSpec.model_validate(_spec(**{f"resources.{field}": value}))

    assert getattr(spec.resources, field) == wire


@pytest.mark.parametrize(("field", "value"), [("memory", "16GB"), ("cpu", "four"), ("cpu", 0), ("cpu", True),
                                              ("memory", "-1Gi"), ("cpu", "0m")])
def test_a_value_that_is_not_a_quantity_is_refused_with_an_example(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=f"resources.{field}"):
        ModelOptimizationSpec.model_validate(_spec(**{f"resources.{field}": value}))


def test_the_crd_marks_quantities_int_or_string_with_a_cel_quantity_check() -> None:
    for field in ("cpu", "memory"):
        node = SPEC["properties"]["resources"]["properties"][field]

        assert node["x-kubernetes-int-or-string"] is True and "type" not in node
        assert "isQuantity(self)" in node["x-kubernetes-validations"][0]["rule"]


def test_a_batch_size_below_one_is_refused_by_the_model_and_the_crd() -> None:
    with pytest.raises(ValidationError, match=r"benchmark\.batchSizes\.1"):
        ModelOptimizationSpec.model_validate(_spec(**{"benchmark.batchSizes": [1, 0]}))

    assert SPEC["properties"]["benchmark"]["properties"]["batchSizes"]["items"]["minimum"] == 1


@pytest.mark.parametrize("field", ["model.uri", "output.uri", "calibration.uri", "validation.uri"])
def test_a_uri_scheme_kubeopt_cannot_read_is_refused(field: str) -> None:
    extra = {"calibration.uri": "s3://c/d"} if field != "calibration.uri" else {}
    with pytest.raises(ValidationError, match="unsupported URI scheme gs://"):
        ModelOptimizationSpec.model_validate(_spec(**{field: "gs://bucket/m.onnx", **extra}))


def test_every_uri_field_carries_the_schemes_and_pvc_rules_in_the_crd() -> None:
    nodes = [SPEC["properties"]["model"]["properties"]["uri"], SPEC["properties"]["output"]["properties"]["uri"],
             SPEC["properties"]["calibration"]["properties"]["uri"],
             SPEC["properties"]["validation"]["properties"]["uri"]]

    for node in nodes:
        messages = [v["message"] for v in node["x-kubernetes-validations"]]
        assert any("unsupported URI scheme" in m for m in messages)
        assert any(m.startswith("pvc:// is not mounted by kubeopt Jobs") for m in messages)
