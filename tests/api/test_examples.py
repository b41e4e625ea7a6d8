from __future__ import annotations

from pathlib import Path

import pytest

from kubeopt.api.load import load_resource

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_model_optimization(path: Path) -> None:
    resource = load_resource(path.read_text(), str(path))

    assert resource.spec.targets
