"""INT8 GEMMs for GPU targets on exported programs. torch runs torch._int_mm on the CPU too, so the
rewritten graph is checked against the float original here; the speed is measured on the H100."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from kubeopt.worker.backends.torch_compile import fusion, int8  # noqa: E402
from tests.worker.small_models import Encoderish, relative_error  # noqa: E402


class Bottleneck(torch.nn.Module):
    """ResNet's bottleneck with a strided 1x1 shortcut: three 1x1 convolutions, one 3x3, batch norms."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce = torch.nn.Conv2d(32, 16, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.spatial = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.expand = torch.nn.Conv2d(16, 64, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(64)
        self.shortcut = torch.nn.Conv2d(32, 64, 1, stride=2, bias=False)
        self.padded = torch.nn.Conv2d(64, 64, 1, padding=1)  # a 1x1 with padding is not a plain product
        self.grouped = torch.nn.Conv2d(64, 64, 1, groups=4)
        self.head = torch.nn.Linear(64, 16)
        for bn in (self.bn1, self.bn2, self.bn3):
            torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
            torch.nn.init.uniform_(bn.running_var, 0.5, 2.0)
            torch.nn.init.normal_(bn.running_mean, 0.0, 0.1)

    def forward(self, x: Any) -> Any:
        y = torch.relu(self.bn1(self.reduce(x)))
        y = torch.relu(self.bn2(self.spatial(y)))
        y = torch.relu(self.bn3(self.expand(y)) + self.shortcut(x))
        y = self.grouped(self.padded(y))
        return self.head(y.mean(dim=(2, 3)))


def exported(model: Any, x: Any) -> Any:
    return torch.export.export(model.eval(), (x,)).module()


def test_linear_layers_become_int8_gemms_and_keep_the_outputs_within_int8_rounding() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 32, 64)
    module = exported(Encoderish(), x)
    expected = module(x)

    report = int8.quantize_matmuls(module)

    assert report.as_dict() == {"linears": 2, "conv1x1": 0}  # the 10-wide head stays float
    actual = module(x)
    assert actual.shape == (4, 32, 10)
    assert 0 < relative_error(actual, expected) < 0.02  # per-row int8 keeps about 7 bits per element
    int8_buffers = [b for b in module.buffers() if b.dtype == torch.int8]
    assert len(int8_buffers) == 2
    assert "up.weight" not in dict(module.state_dict()) and "down.weight" not in dict(module.state_dict())


def test_the_rewritten_graph_multiplies_in_int8() -> None:
    x = torch.randn(2, 32, 64)
    module = exported(Encoderish(), x)
    int8.quantize_matmuls(module)

    traced = torch.export.export(module, (x,))

    targets = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert targets.count(torch.ops.aten._int_mm.default) == 2


def test_a_product_with_sixteen_rows_or_fewer_uses_the_dequantized_weight() -> None:
    # torch._int_mm on CUDA needs more than 16 rows: batch 1 through a classifier has one.
    torch.manual_seed(0)
    x = torch.randn(1, 64)
    module = exported(Encoderish(), x)
    expected = module(x)
    int8.quantize_matmuls(module)

    traced = torch.export.export(module, (x,))

    targets = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert torch.ops.aten._int_mm.default not in targets
    assert relative_error(module(x), expected) < 0.02


def test_a_classifier_with_a_dynamic_batch_serves_batch_1_and_128_from_one_saved_int8_program(
        tmp_path: Any) -> None:
    # The head's row count is the batch: branching on it narrowed the exported program to batch
    # <= 16 (the H200 run of int8-cl-ro failed "Guard failed: x.size()[0] <= 16" at batch 128).
    torch.manual_seed(0)
    model = Bottleneck().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    module = torch.export.export(model, (torch.randn(2, 32, 16, 16),), dynamic_shapes=({0: batch},)).module()
    fusion.fold_batch_norm(module)
    assert int8.quantize_matmuls(module).as_dict() == {"linears": 1, "conv1x1": 3}

    program = torch.export.export(module, (torch.randn(2, 32, 16, 16),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")
    served = torch.export.load(tmp_path / "model.pt2").module()

    for size in (1, 7, 128):
        x = torch.randn(size, 32, 16, 16)
        assert relative_error(served(x), model(x)) < 0.03, size


@pytest.mark.parametrize("channels_last", [False, True])
def test_one_by_one_convolutions_become_int8_gemms_after_batch_norm_folding(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16, 16)
    model = Bottleneck().eval()
    expected = model(x)
    module = exported(model, x)

    assert fusion.fold_batch_norm(module) == 3
    report = int8.quantize_matmuls(module)

    # reduce, expand and the strided shortcut; not the 3x3, the padded or the grouped one.
    assert report.as_dict() == {"linears": 1, "conv1x1": 3}
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    assert relative_error(module(x), expected) < 0.03


def test_an_int8_convolution_returns_channels_last_memory_like_cudnn() -> None:
    x = torch.randn(2, 32, 8, 8).contiguous(memory_format=torch.channels_last)
    weight, scale = int8.quantize_weight(torch.randn(64, 32, 1, 1))

    out = int8.int8_conv1x1(x, weight, scale, None, [2, 2])

    assert out.shape == (2, 64, 4, 4)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_weights_are_quantized_per_output_channel() -> None:
    weight = torch.randn(24, 16) * torch.arange(1, 25).unsqueeze(1)  # channels of very different ranges

    quantized, scale = int8.quantize_weight(weight)

    assert quantized.dtype == torch.int8 and quantized.shape == (24, 16)
    assert scale.shape == (1, 24)
    assert int(quantized.abs().amax(dim=1).min()) == 127  # every channel uses its full range
    assert relative_error(quantized.float() * scale.t(), weight) < 0.01


def test_the_rewritten_graph_compiles_without_graph_breaks() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 32, 64)
    module = exported(Encoderish(), x)
    expected = module(x)
    int8.quantize_matmuls(module)

    compiled = torch.compile(module, fullgraph=True)

    with torch.inference_mode():
        assert relative_error(compiled(x), expected) < 0.02
