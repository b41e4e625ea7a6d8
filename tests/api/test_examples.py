from __future__ import annotations

from pathlib import Path

import pytest

from kubeopt.api.load import load_resource

# examples/gitops/ also holds Argo CD and Flux objects (e2e/test_gitops.py dry-runs those).
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml")
                  if "\nkind: ModelOptimization\n" in p.read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_model_optimization(path: Path) -> None:
    resource = load_resource(path.read_text(), str(path))

    assert resource.spec.targets
