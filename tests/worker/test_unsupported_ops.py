"""An operator nothing here defines is UnsupportedOp naming it, not ModelCorrupt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import run_kubeopt

pytestmark = pytest.mark.slow

# Registers a custom op, exports a model that calls it, and saves the program. The op is
# registered only in that process, as one of a library the worker's image does not have.
MAKE_CUSTOM_OP_PT2 = """
import sys
import torch

@torch.library.custom_op("kubeopt_test::double", mutates_args=())
def double(x: torch.Tensor) -> torch.Tensor:
    return x * 2

@double.register_fake
def _(x):
    return torch.empty_like(x)

class Model(torch.nn.Module):
    def forward(self, pixels):
        return torch.ops.kubeopt_test.double(pixels).flatten(1)

program = torch.export.export(Model(), (torch.randn(2, 1, 8, 8),))
torch.export.save(program, sys.argv[1])
"""


def resource(model: Path, fmt: str, output: Path) -> dict[str, Any]:
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "ops"},
            "spec": {"model": {"uri": str(model), "format": fmt, "task": "generic",
                               "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
                     "targets": [{"name": "ort", "backend": "onnxruntime"}],
                     "benchmark": {"batchSizes": [1], "warmup": 1, "iterations": 2},
                     "output": {"uri": str(output)}, "resources": {"gpu": 0}}}


def test_a_pt2_holding_an_unregistered_custom_op_is_unsupported_op_naming_it(tmp_path: Path) -> None:
    model = tmp_path / "custom.pt2"
    subprocess.run([sys.executable, "-c", MAKE_CUSTOM_OP_PT2, str(model)], check=True, timeout=300)

    code, output, message = run_kubeopt(tmp_path, resource(model, "torch-export", tmp_path / "out"))

    assert message is not None, output
    assert message["reason"] == "UnsupportedOp", message
    assert code == EXIT_CODES[Reason.UNSUPPORTED_OP]
    assert "torch.ops.kubeopt_test.double" in message["message"]


def test_an_onnx_op_unknown_to_the_default_domain_is_unsupported_op_naming_it(tmp_path: Path) -> None:
    node = helper.make_node("Frobnicate", ["pixels"], ["out"])  # default domain: no such ONNX operator
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [-1, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [-1, 1, 8, 8])])
    model = tmp_path / "unknown.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))

    code, output, message = run_kubeopt(tmp_path, resource(model, "onnx", tmp_path / "out"))

    assert message is not None, output
    assert message["reason"] == "UnsupportedOp", message
    assert code == EXIT_CODES[Reason.UNSUPPORTED_OP]
    assert "Frobnicate" in message["message"] and "opset 17" in message["message"]
