"""Inductor graphs compiled without Dynamo, saved and loaded back, on the CPU (the GPU's load time is
measured on the H100: there the bundle holds compiled Triton kernels; on a CPU Inductor rebuilds its
C++ kernels when it loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from kubeopt.worker import precompiled  # noqa: E402


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(16, 32)
        self.second = torch.nn.Linear(32, 4)

    def forward(self, x: Any) -> Any:
        return self.second(torch.relu(self.first(x)))


def exported() -> Any:
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1, max=1024)
    return torch.export.export(Small().eval(), (torch.randn(2, 16),), dynamic_shapes=({0: batch},)).module()


def test_a_graph_per_input_shape_is_compiled_and_runs_like_the_model() -> None:
    module = exported()
    graphs = precompiled.PrecompiledGraphs(module, {})
    x = torch.randn(8, 16)

    with torch.inference_mode():
        out = graphs(x)

    assert list(graphs.graphs) == [((8, 16),)]
    assert torch.allclose(out[0], module(x), atol=1e-6)
    assert graphs.compile_seconds > 0


def test_stored_graphs_load_for_the_same_key_and_not_for_another(tmp_path: Path) -> None:
    module = exported()
    x = torch.randn(8, 16)
    graphs = precompiled.PrecompiledGraphs(module, {})
    with torch.inference_mode():
        expected = graphs(x)[0]
    key = precompiled.graph_key(module, [((8, 16),)], {}, "cpu")
    graphs.save(tmp_path / precompiled.BUNDLE_FILE, key)

    other = precompiled.PrecompiledGraphs(module, {})
    assert other.load(tmp_path / precompiled.BUNDLE_FILE, "another graph") is False
    assert other.graphs == {}

    loaded = precompiled.PrecompiledGraphs(module, {})
    assert loaded.load(tmp_path / precompiled.BUNDLE_FILE, key) is True
    with torch.inference_mode():
        assert torch.allclose(loaded(x)[0], expected)
    assert loaded.compile_seconds == 0  # nothing traced or lowered
    loaded.save(tmp_path / "again.zip", key)  # a loaded graph is stored again from its bytes
    assert precompiled.PrecompiledGraphs(module, {}).load(tmp_path / "again.zip", key) is True


def test_the_key_changes_with_the_weights_layout_and_the_input_shapes() -> None:
    module = exported()
    key = precompiled.graph_key(module, [((8, 16),)], {}, "cpu")

    assert precompiled.graph_key(module, [((4, 16),)], {}, "cpu") != key
    assert precompiled.graph_key(module, [((8, 16),)], {"triton.cudagraphs": True}, "cpu") != key
    assert precompiled.graph_key(module.to(torch.float16), [((8, 16),)], {}, "cpu") != key
