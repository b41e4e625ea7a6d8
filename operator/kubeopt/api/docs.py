"""``kubeopt docs``: the generated documentation files and where they go in the repository.

Two outputs, both generated and both held to their source by tests (``tests/api/test_reference.py``):
``docs/reference.md`` (``kubeopt.api.reference``) and the README's troubleshooting table, between
the ``reasons:begin`` and ``reasons:end`` markers (``kubeopt.api.troubleshooting``). The chart's
files are read from the repository root given, so the command runs from any checkout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kubeopt.api.reference import render_reference
from kubeopt.api.troubleshooting import reason_table

REFERENCE = Path("docs") / "reference.md"
README = Path("README.md")
VALUES_SCHEMA = Path("charts") / "kubeopt" / "values.schema.json"
VALUES = Path("charts") / "kubeopt" / "values.yaml"
_BLOCK = re.compile(r"(<!-- reasons:begin[^>]*-->\n)(.*?)(<!-- reasons:end -->)", re.S)


def reference_text(root: Path) -> str:
    """docs/reference.md as the CRD models and the chart under ``root`` make it."""
    schema: dict[str, Any] = json.loads((root / VALUES_SCHEMA).read_text())
    return render_reference(schema, (root / VALUES).read_text())


def readme_text(readme: str) -> str:
    """``readme`` with the table between the reasons markers replaced by the generated one.

    Raises ValueError when the markers are missing (a README edit that dropped them)."""
    if not _BLOCK.search(readme):
        raise ValueError(f"{README}: no <!-- reasons:begin --> ... <!-- reasons:end --> block to fill")
    return _BLOCK.sub(lambda m: m.group(1) + reason_table() + m.group(3), readme, count=1)


def write_docs(root: Path) -> list[Path]:
    """Write every generated document under ``root``; return the files written.

    Everything is rendered before anything is written, so a failure leaves the files as they were."""
    outputs = {root / REFERENCE: reference_text(root), root / README: readme_text((root / README).read_text())}
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(outputs)
