"""Markdown table cells for the generated reference: escaping, inline code, a schema node's bounds in words.

Shared by the resource's table (``kubeopt.api.reference``) and the chart values' table
(``kubeopt.api.values_reference``) so that both say "≥ 1" or "matches `…`" the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A pattern that is a closed list of words, ^(a|b|c)$, reads better as the list.
_CHOICES = re.compile(r"^\^\((?P<words>[\w.-]+(\|[\w.-]+)*)\)\$$")


def cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell (no line breaks, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    """``text`` as inline code in a table cell (a text holding a backtick gets a double fence)."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{cell(text)}{fence}"


def bounds(node: Mapping[str, Any]) -> list[str]:
    """The enum, numeric, length and pattern constraints of a schema node, each as cell-safe words."""
    out: list[str] = []
    if "enum" in node:
        out.append(", ".join(code(str(v)) for v in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None:
        out.append(f"{'>' if node.get('exclusiveMinimum') is True else '≥'} {low}")
    if high is not None:
        out.append(f"{'<' if node.get('exclusiveMaximum') is True else '≤'} {high}")
    for key, words, unit in (("minLength", "at least", "character"), ("maxLength", "at most", "character"),
                             ("minItems", "at least", "item"), ("maxItems", "at most", "item")):
        if key in node:
            out.append(f"{words} {node[key]} {unit}{'' if node[key] == 1 else 's'}")
    if node.get("uniqueItems"):
        out.append("unique items")
    choices = _CHOICES.match(node.get("pattern", ""))
    if choices:
        out.append(", ".join(code(word) for word in choices.group("words").split("|")))
    elif "pattern" in node:
        out.append(f"matches {code(node['pattern'])}")
    return out
