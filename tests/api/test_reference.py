"""docs/reference.md and the README's troubleshooting table are what their sources generate.

The reference is generated from the CRD models and the chart (``kubeopt docs``); these tests fail
when the committed files drift from the generator, when the generator misses a field, a value or
a reason, or when its Markdown would break a table.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeopt.api.crd import build_crd
from kubeopt.api.docs import README, REFERENCE, VALUES, VALUES_SCHEMA, readme_text, reference_text
from kubeopt.api.reasons import Reason
from kubeopt.api.reference import crd_rows
from kubeopt.api.troubleshooting import GUIDES, reason_table
from kubeopt.api.values_reference import cross_value_rules, value_rows, values_comments

ROOT = Path(__file__).resolve().parents[2]
STALE = "is stale: run `make docs` (kubeopt docs) and commit the result"


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    return schema


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if not isinstance(values, dict) or not values:
        return [prefix]
    return [path for key, child in values.items() for path in leaf_paths(child, f"{prefix}.{key}" if prefix else key)]


def cells(row: str) -> list[str]:
    """A Markdown table row split on its unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_the_committed_reference_is_what_kubeopt_docs_generates() -> None:
    assert (ROOT / REFERENCE).read_text() == reference_text(ROOT), f"{REFERENCE} {STALE}"


def test_the_readme_troubleshooting_table_is_the_generated_one() -> None:
    readme = (ROOT / README).read_text()

    assert readme_text(readme) == readme, f"README.md's troubleshooting table {STALE}"
    assert reason_table() in readme


def test_every_reason_has_a_guide_and_a_row() -> None:
    table = reason_table()

    assert set(GUIDES) == set(Reason)
    assert [f"`{reason.value}`" for reason in Reason] == [cells(row)[0].strip() for row in table.splitlines()[2:]]


def test_every_field_of_the_crd_has_a_row() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        found = []
        for name, child in node.get("properties", {}).items():
            found += [f"{path}.{name}", *walk(child, f"{path}.{name}")]
        if "properties" in node.get("items", {}):
            found += walk(node["items"], f"{path}[]")
        return found

    for part in ("spec", "status"):
        schema = spec_schema()[part]

        assert [row.path for row in crd_rows(schema, part)] == walk(schema, part)


def test_a_default_stated_in_a_description_fills_the_default_column() -> None:
    rows = {row.path: row for row in crd_rows(spec_schema()["spec"], "spec")}

    assert rows["spec.resources.gpu"].default == "1"
    assert rows["spec.benchmark.batchSizes"].default == "[1, 8, 32]"
    assert "Default:" not in rows["spec.resources.gpu"].description
    assert rows["spec.targets[].backend"].type == "string, required"
    assert rows["spec.resources.cpu"].type == "integer or string"


def test_every_value_of_values_yaml_has_a_row_with_its_default() -> None:
    text = (ROOT / VALUES).read_text()
    values = yaml.safe_load(text)
    schema = json.loads((ROOT / VALUES_SCHEMA).read_text())
    rows = {row[0]: row for row in value_rows(schema, "", values, values_comments(text))}

    maps = [path for path, row in rows.items() if row[1].startswith("map of")]
    missing = [path for path in leaf_paths(values)
               if path not in rows and not any(path.startswith(f"{m}.") for m in maps)]

    assert missing == []
    assert rows["livenessTimeoutSeconds"][2] == "180"
    assert rows["serviceMonitor.interval"][2] == '"30s"'
    assert "no other keys" in rows["serviceMonitor"][3]


def test_every_chart_value_has_a_description_from_the_schema_or_values_yaml() -> None:
    text = (ROOT / VALUES).read_text()
    schema = json.loads((ROOT / VALUES_SCHEMA).read_text())

    blank = [row[0] for row in value_rows(schema, "", yaml.safe_load(text), values_comments(text)) if not row[4]]

    assert blank == [], "describe these in charts/kubeopt/values.schema.json, then run `make docs`"


def test_a_values_comment_describes_a_value_the_schema_does_not() -> None:
    text = ("# The operator's image.\nimage:\n  # Where it comes from.\n  repository: x\n"
            "  tag: \"\"   # empty: appVersion\n\nother: 1\n")

    comments = values_comments(text)

    assert comments == {"image": "The operator's image.", "image.repository": "Where it comes from.",
                        "image.tag": "empty: appVersion"}


def test_each_if_then_rule_of_the_values_schema_becomes_a_sentence() -> None:
    schema = json.loads((ROOT / VALUES_SCHEMA).read_text())

    rules = cross_value_rules(schema)

    assert "When `replicaCount` ≥ 2: `peering.enabled` is `true`." in rules
    assert len(rules) == 1 + len([rule for rule in schema.get("allOf", []) if "if" in rule])


def test_no_cell_of_the_reference_breaks_its_table() -> None:
    text = reference_text(ROOT)
    tables = re.findall(r"((?:^\|.*\|\n)+)", text, re.M)

    for table in tables:
        widths = {len(cells(row)) for row in table.splitlines()}
        assert len(widths) == 1, table.splitlines()[0]
    assert len(tables) == 4  # spec, status, values, reasons


def test_kubeopt_docs_writes_both_files_and_refuses_a_readme_without_markers(tmp_path: Path) -> None:
    for path in (VALUES_SCHEMA, VALUES, README):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    (tmp_path / README).write_text(re.sub(r"(<!-- reasons:begin[^>]*-->\n).*?(<!-- reasons:end -->)", r"\1\2",
                                          (ROOT / README).read_text(), flags=re.S))
    command = [sys.executable, "-m", "kubeopt.cli", "docs", "--root", str(tmp_path)]

    subprocess.run(command, check=True, capture_output=True)

    assert (tmp_path / REFERENCE).read_text() == (ROOT / REFERENCE).read_text()
    assert (tmp_path / README).read_text() == (ROOT / README).read_text()
    (tmp_path / README).write_text("# no markers\n")
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode != 0 and "reasons:begin" in failed.stderr


@pytest.mark.parametrize("reason", list(Reason))
def test_each_guide_says_what_it_means_and_what_to_do(reason: Reason) -> None:
    guide = GUIDES[reason]

    assert guide.source in ("worker", "operator", "worker, operator")
    assert len(guide.meaning) > 20 and len(guide.action) > 10


def test_a_schema_default_fills_the_default_column_too() -> None:
    node = {"properties": {"gpu": {"type": "integer", "default": 1, "description": "GPUs."}}}

    (row,) = crd_rows(node, "spec")

    assert (row.default, row.description) == ("1", "GPUs.")
