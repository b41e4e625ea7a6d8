"""FP8 linear layers on exported programs. torch runs float8 matrix products on the CPU too (slowly),
so the rewritten graph is checked against the bf16 original here; the speed is measured on the H100."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from kubeopt.worker.backends.torch_compile import float8  # noqa: E402
from kubeopt.worker.errors import InvalidSpec  # noqa: E402
from tests.worker.small_models import Encoderish, relative_error  # noqa: E402


def exported_bf16(model: Any, x: Any) -> Any:
    module = torch.export.export(model.eval(), (x,)).module()
    return module.to(torch.bfloat16)


def test_linear_layers_become_float8_and_keep_the_outputs_within_fp8_rounding() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 32, 64)
    module = exported_bf16(Encoderish(), x)
    expected = module(x.bfloat16())

    assert float8.quantize_linears(module) == 2  # up and down; the 10-wide head stays bf16

    actual = module(x.bfloat16())
    assert actual.dtype == torch.bfloat16 and actual.shape == (4, 32, 10)
    assert 0 < relative_error(actual, expected) < 0.08  # e4m3 keeps 3 mantissa bits: a few percent
    float8_buffers = [b for b in module.buffers() if b.dtype == torch.float8_e4m3fn]
    assert len(float8_buffers) == 2


def test_the_replaced_bf16_weights_are_dropped_from_the_module() -> None:
    x = torch.randn(2, 64)
    module = exported_bf16(Encoderish(), x)

    float8.quantize_linears(module)

    names = set(module.state_dict())
    assert "up.weight" not in names and "down.weight" not in names
    assert "head.weight" in names and "up.bias" in names  # kept: still read by the graph


def test_fp8_linear_matches_a_bf16_matmul_for_any_leading_shape() -> None:
    torch.manual_seed(1)
    weight = torch.randn(48, 32)
    bias = torch.randn(48).bfloat16()
    x = torch.randn(2, 3, 5, 32).bfloat16()
    quantized, scale = float8.quantize_weight(weight)

    out = float8.fp8_linear(x, quantized, scale, bias)

    assert out.shape == (2, 3, 5, 48)
    assert relative_error(out, x.float() @ weight.t() + bias.float()) < 0.08


def test_weight_scales_are_one_per_output_channel_and_reach_the_e4m3_range() -> None:
    weight = torch.tensor([[1.0, -2.0], [0.5, 0.25]]).repeat(1, 8)
    quantized, scale = float8.quantize_weight(weight)

    assert scale.shape == (1, 2)
    torch.testing.assert_close(scale, torch.tensor([[2.0 / 448, 0.5 / 448]]))
    assert quantized.float().abs().amax(dim=1).tolist() == [448.0, 448.0]


def test_fp8_on_a_cpu_is_refused_naming_the_gpus_that_have_fp8() -> None:
    with pytest.raises(InvalidSpec, match=r"compute capability 8\.9 or newer"):
        float8.check_device("cpu")


def test_the_float8_graph_compiles_as_one_graph_without_breaks() -> None:
    x = torch.randn(2, 8, 64).bfloat16()
    module = exported_bf16(Encoderish(), x.float())
    expected = module(x)
    float8.quantize_linears(module)
    torch._dynamo.reset()

    compiled = torch.compile(module, fullgraph=True, dynamic=False)  # a graph break raises here

    with torch.inference_mode():
        assert relative_error(compiled(x), expected) < 0.08
