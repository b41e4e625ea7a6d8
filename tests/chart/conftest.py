"""The chart's fixtures: ``render``, a ``helm template`` of charts/kubeopt (see helm.py)."""

from __future__ import annotations

import pytest

from tests.chart.helm import Renderer, require_helm


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    return Renderer(require_helm(), tmp_path_factory.mktemp("helm"))
