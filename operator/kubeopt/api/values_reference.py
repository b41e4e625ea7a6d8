"""The Helm chart values part of the configuration reference, from values.schema.json and values.yaml.

The schema is what ``helm install``/``upgrade`` validate against, so its types, enums, bounds,
patterns, ``additionalProperties: false`` and ``if``/``then`` rules are the constraints a reader
needs; the defaults are what ``values.yaml`` sets. Where the schema has no description, the comment
block written above the key in ``values.yaml`` (or the comment at the end of its line) is the
description: the chart's authors document values there, as helm-docs reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from kubeopt.api.markdown import bounds, cell, code

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")
_INLINE = re.compile(r"\s#\s?(?P<comment>.*)$")


def values_comments(text: str) -> dict[str, str]:
    """Dotted path -> the comment above the key (a block of ``#`` lines) or at the end of its line."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:
            pending = []  # a blank line or a list item ends a comment block
            continue
        indent = len(match.group("indent"))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, match.group("key"))]
        inline = _INLINE.search(match.group("rest"))
        words = pending + ([inline.group("comment")] if inline else [])
        if words:
            comments[".".join(k for _, k in stack)] = " ".join(w for w in words if w)
        pending = []
    return comments


def _lookup(values: Any, path: str) -> tuple[bool, Any]:
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def value_type(node: Mapping[str, Any]) -> str:
    """A short name of a JSON-schema node's type: ``string``, ``array of object``, ``map of string``."""
    if "oneOf" in node:
        return " or ".join(value_type(option) for option in node["oneOf"])
    if "enum" in node and "type" not in node:
        return "string"
    kind = node.get("type")
    if kind == "array":
        return f"array of {value_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {value_type(node['additionalProperties'])}"
    return str(kind or "any")


def constraints(node: Mapping[str, Any]) -> list[str]:
    """What the schema refuses at this node, in words (enum, bounds, pattern, keys, items)."""
    out = bounds(node)
    if "not" in node and "enum" in node["not"]:
        out.append("not " + ", ".join(code(str(v)) for v in node["not"]["enum"]))
    if node.get("additionalProperties") is False:
        out.append("no other keys")
    if "propertyNames" in node:
        out += [f"keys {c}" for c in constraints(node["propertyNames"])]
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        out += [f"values {c}" for c in constraints(values)]
    for option in node.get("oneOf", []):
        out += [f"as {value_type(option)}: {c}" for c in constraints(option)]
    items = node.get("items")
    if isinstance(items, dict) and "properties" not in items:
        out += [f"each {c}" for c in constraints(items)]
    return out


def value_rows(node: Mapping[str, Any], path: str, values: Any,
               comments: Mapping[str, str]) -> Iterator[tuple[str, ...]]:
    """(path, type, default, constraints, description) of every value under ``node``, in schema order."""
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        found, default = _lookup(values, here) if "[]" not in here else (False, None)
        kind = value_type(child) + (", required" if name in required else "")
        shown = json.dumps(default, ensure_ascii=False) if found and "properties" not in child else ""
        description = child.get("description") or comments.get(here, "")
        yield here, kind, shown, "; ".join(constraints(child)), description
        yield from value_rows(child, here, values, comments)
        items = child.get("items")
        if isinstance(items, dict) and "properties" in items:
            yield from value_rows(items, f"{here}[]", values, comments)


def _conditions(node: Mapping[str, Any], path: str = "") -> list[str]:
    """The constraints an ``if`` or ``then`` schema states, each naming its value's path."""
    out: list[str] = []
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        if "const" in child:
            out.append(f"{code(here)} is {code(json.dumps(child['const']))}")
        out += [f"{code(here)} {b}" for b in bounds(child)]
        out += _conditions(child, here)
    return out


def cross_value_rules(schema: Mapping[str, Any]) -> list[str]:
    """One sentence per ``if``/``then`` rule of the schema (at the top and in ``allOf``)."""
    rules = [schema] if "if" in schema else []
    rules += [rule for rule in schema.get("allOf", []) if "if" in rule]
    return [f"When {' and '.join(_conditions(rule['if']))}: {' and '.join(_conditions(rule['then']))}."
            for rule in rules]


def values_section(schema: Mapping[str, Any], values_text: str) -> str:
    """The chart values table with the schema's cross-value rules."""
    values = yaml.safe_load(values_text)
    rows = value_rows(schema, "", values, values_comments(values_text))
    lines = ["| value | type | default | constraints | description |", "|---|---|---|---|---|"]
    lines += [f"| {code(path)} | {kind} | {code(default) if default else ''} | {limits} | {cell(text)} |"
              for path, kind, default, limits, text in rows]
    rules = "\n".join(f"- {rule}" for rule in cross_value_rules(schema))
    return (
        "## Helm chart values\n\n"
        "`charts/kubeopt`: defaults from `values.yaml`; constraints from `values.schema.json`, which "
        "`helm template`, `install` and `upgrade` check before rendering anything (an unknown key is "
        "refused with its path wherever the table says \"no other keys\").\n\n"
        + "\n".join(lines) + "\n\n"
        "### Rules across values\n\n"
        f"{rules}\n"
    )
