from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeopt.api.crd import build_crd, render_crd

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    if "items" in schema:
        found += walk(schema["items"], f"{path}[]")
    return found


def test_committed_crd_is_what_the_models_generate() -> None:
    assert CRD_PATH.read_text() == render_crd(), "crds/ is stale: run `make crd`"


def test_chart_carries_an_identical_copy_of_the_crd() -> None:
    chart_copy = ROOT / "charts" / "kubeopt" / "crds" / CRD_PATH.name
    if not chart_copy.exists():
        return  # the chart is checked by the controller tests once it exists
    assert chart_copy.read_bytes() == CRD_PATH.read_bytes(), "charts/kubeopt/crds is stale: run `make crd`"


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

    missing = [path for path, node in walk(spec) if not path.endswith("[]") and not node.get("description")]

    assert missing == []


def test_schema_is_structural_without_refs_or_unions() -> None:
    text = yaml.safe_dump(build_crd())

    assert "$ref" not in text and "anyOf" not in text and "$defs" not in text


def test_cross_field_rules_are_cel_validations() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    target_rules = [v["rule"] for v in spec["properties"]["targets"]["items"]["x-kubernetes-validations"]]

    assert any("int8" in r and "calibration" in r for r in rules)
    assert any("exists_one" in r for r in rules)
    assert "!has(self.torchCompile) || self.backend == 'torch-compile'" in target_rules


def test_resource_prints_phase_best_and_speedup_with_short_name_mopt() -> None:
    crd = build_crd()["spec"]
    columns = [c["name"] for c in crd["versions"][0]["additionalPrinterColumns"]]

    assert columns == ["Phase", "Best", "Speedup", "Age"]
    assert crd["names"]["shortNames"] == ["mopt"]
    assert crd["versions"][0]["subresources"] == {"status": {}}
