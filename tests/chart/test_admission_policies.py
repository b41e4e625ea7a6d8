"""The chart's admission policies and values schema against the API models they guard.

The ``modeloptimization-references`` policy checks each image field of ``Images`` by name; a
field added to ``Images`` but not to the policy would let a spec choose any image. These tests
read the chart's files (no helm needed); e2e/test_admission.py runs the rendered policies on a
real API server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kubeopt.api.spec import Images
from kubeopt.controller.settings import DEFAULT_WORKER_SERVICE_ACCOUNT

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubeopt"
POLICIES = CHART / "templates" / "admission-policies.yaml"


def image_fields_of_the_api() -> set[str]:
    """Wire names of every ``Images`` field that holds an image (all but pullPolicy)."""
    return {info.alias or name for name, info in Images.model_fields.items() if name != "pull_policy"}


def image_fields_of_the_policy() -> set[str]:
    match = re.search(r"\$imageFields := list ((?:\"[A-Za-z]+\"\s*)+)", POLICIES.read_text())
    assert match, f"{POLICIES} lost its $imageFields list"
    return set(re.findall(r"\"([A-Za-z]+)\"", match.group(1)))


def test_the_policy_checks_every_image_field_of_the_api() -> None:
    assert image_fields_of_the_policy() == image_fields_of_the_api()


def test_the_chart_has_a_worker_image_value_and_a_schema_entry_per_image_field() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    assert set(values["workerImages"]) == image_fields_of_the_api()
    assert set(schema["properties"]["workerImages"]["properties"]) == image_fields_of_the_api()


def test_the_chart_defaults_match_the_operators() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    assert values["workerServiceAccount"]["name"] == DEFAULT_WORKER_SERVICE_ACCOUNT
    assert values["admission"]["enabled"] is True
    assert values["admission"]["allowedImagePrefixes"] == ["ghcr.io/kubeopt/"]
    assert values["namespaceOptIn"]["label"] == "kubeopt.io/enabled"


def test_the_values_schema_allows_more_than_one_replica_only_with_peering_and_says_why() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    replicas = schema["properties"]["replicaCount"]

    assert (replicas["type"], replicas["minimum"], replicas["maximum"]) == ("integer", 0, 3)
    assert "peering" in replicas["description"]
    assert schema["if"]["properties"]["replicaCount"] == {"type": "integer", "minimum": 2}
    assert schema["then"]["properties"]["peering"]["properties"]["enabled"] == {"const": True}
