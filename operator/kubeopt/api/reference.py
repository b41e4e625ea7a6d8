"""The configuration reference (docs/reference.md), generated from the CRD and the chart's values schema.

A platform team reads one page for every field a ModelOptimization takes and every value the chart
takes. Written by hand it would drift from the API the day a field is added; so it is generated,
like the CRD, from what the API server and Helm actually enforce:

* the resource's fields come from the CRD that ``kubeopt.api.crd`` builds from the pydantic models
  (type, the default its description states, enum, bounds, pattern, CEL rules' messages);
* the chart's values come from ``charts/kubeopt/values.schema.json`` (the same schema ``helm``
  validates with), their defaults from ``values.yaml`` and, where the schema has no description,
  the comment above the key in ``values.yaml`` (``kubeopt.api.values_reference``);
* the troubleshooting table comes from ``kubeopt.api.troubleshooting`` (every reason).

``kubeopt docs`` (``make docs``) writes the page and the README's troubleshooting table; a test
fails when either differs from what this module renders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubeopt.api.crd import INT_OR_STRING, build_crd
from kubeopt.api.markdown import bounds, cell, code
from kubeopt.api.troubleshooting import reason_table
from kubeopt.api.values_reference import values_section

DEFAULT = re.compile(r"\s*Default: (?P<value>.*)\.$", re.S)
REGENERATE = "make docs"


@dataclass(frozen=True)
class FieldRow:
    """One line of a reference table."""

    path: str
    type: str
    default: str
    allowed: str
    description: str


def schema_type(node: Mapping[str, Any]) -> str:
    """A short name of an OpenAPI node's type: ``string``, ``array of object``, ``map of string``."""
    if node.get(INT_OR_STRING):
        return "integer or string"
    kind = node.get("type")
    if kind == "array":
        return f"array of {schema_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {schema_type(node['additionalProperties'])}"
    if kind == "object" and node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return "object (free-form)"
    if kind is None and node.get("x-kubernetes-preserve-unknown-fields"):
        return "any (boolean, number or string)"
    return str(kind or "any")


def _split_default(description: str) -> tuple[str, str]:
    """(description without its "Default: x." tail, x) as ``kubeopt.api.crd`` writes defaults."""
    match = DEFAULT.search(description)
    if match is None:
        return description, ""
    return description[: match.start()], match.group("value")


def crd_rows(node: Mapping[str, Any], path: str) -> Iterator[FieldRow]:
    """Every field under ``node`` (a CRD schema node at ``path``), depth first, in schema order."""
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        yield from _crd_field(child, f"{path}.{name}", name in required)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield from crd_rows(items, f"{path}[]")


def _crd_field(node: Mapping[str, Any], path: str, required: bool) -> Iterator[FieldRow]:
    description, default = _split_default(node.get("description", ""))
    if not default and "default" in node:  # a schema default, should the CRD ever carry one
        default = json.dumps(node["default"])
    kind = schema_type(node)
    allowed = bounds(node) + [f"each {b}" for b in bounds(node.get("items", {}))]
    rules = [rule["message"] for rule in node.get("x-kubernetes-validations", []) if "message" in rule]
    if rules and "properties" not in node and "items" not in node:
        # A scalar's own CEL rules (URI schemes, quantities); an object's rules go to the list below the table.
        allowed += [cell(rule) for rule in rules]
    yield FieldRow(path=path, type=f"{kind}, required" if required else kind, default=default,
                   allowed="; ".join(allowed), description=description)
    yield from crd_rows(node, path)


def cross_field_rules(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(path, message) of each CEL rule on an object (rules that read several fields)."""
    if "properties" in node:
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule["message"]
        for name, child in node["properties"].items():
            yield from cross_field_rules(child, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict):
        yield from cross_field_rules(items, f"{path}[]")


def field_table(rows: list[FieldRow]) -> str:
    lines = ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
    lines += [f"| {code(r.path)} | {cell(r.type)} | {code(r.default) if r.default else ''} | {r.allowed} | "
              f"{cell(r.description)} |" for r in rows]
    return "\n".join(lines) + "\n"


def resource_section() -> str:
    """The ModelOptimization part of the reference: spec fields, its cross-field rules, status fields."""
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    kind = f"{crd['spec']['group']}/{version['name']} {crd['spec']['names']['kind']}"
    rules = "\n".join(f"- {code(path)}: {' '.join(message.split())}"
                      for path, message in cross_field_rules(schema["spec"], "spec"))
    return (
        f"## {kind}\n\n"
        "Every field of `spec`, as the API server validates it (`kubectl explain modeloptimization.spec` "
        "reads the same descriptions). A default is what kubeopt uses when the field is unset; the API "
        "server does not write it into the stored resource.\n\n"
        f"{field_table(list(crd_rows(schema['spec'], 'spec')))}\n"
        "### Rules across fields\n\n"
        "The API server refuses a resource that breaks one of these (CEL `x-kubernetes-validations`), "
        "with this message; `kubeopt run` applies the same rules.\n\n"
        f"{rules}\n\n"
        "### Status\n\n"
        "Written by the operator only (the status subresource).\n\n"
        f"{field_table(list(crd_rows(schema['status'], 'status')))}"
    )


def render_reference(values_schema: Mapping[str, Any], values_text: str) -> str:
    """docs/reference.md: the resource's fields, the chart's values, the reasons."""
    return (
        "# kubeopt configuration reference\n\n"
        f"<!-- Generated by `kubeopt docs` ({REGENERATE}) from the CRD models (operator/kubeopt/api), "
        "charts/kubeopt/values.schema.json and charts/kubeopt/values.yaml; do not edit by hand. -->\n\n"
        "- [ModelOptimization](#kubeoptiov1alpha1-modeloptimization)\n"
        "- [Helm chart values](#helm-chart-values)\n"
        "- [Condition reasons](#condition-reasons)\n\n"
        f"{resource_section()}\n"
        f"{values_section(values_schema, values_text)}\n"
        "## Condition reasons\n\n"
        "The reason of a failed target (`status.targets[].reason`) and of the `Stalled` condition, the "
        "worker's exit code, and whether the Job retries it (`backoffLimit`) or fails at once.\n\n"
        f"{reason_table()}"
    )
