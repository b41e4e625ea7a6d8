"""The conv-graph rewrites on exported programs: batch-norm folding and fused conv epilogues.

cuDNN's fused ops run only on a GPU, so the epilogue tests hand the rewrite CPU functions
that compute what cuDNN documents (relu(conv(x) + bias) and relu(conv(x) + alpha * z + bias));
the rewritten graph must give the original model's outputs.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from kubeopt.worker.backends.torch_compile import fusion  # noqa: E402

F = torch.nn.functional


def conv_relu_on_cpu(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any) -> Any:
    return torch.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups))


def conv_add_relu_on_cpu(x: Any, weight: Any, z: Any, alpha: Any, bias: Any, stride: Any, padding: Any,
                         dilation: Any, groups: Any) -> Any:
    return torch.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups) + alpha * z)


class Bottleneck(torch.nn.Module):
    """ResNet's residual block: conv-bn-relu, conv-bn, + identity (or a strided conv-bn), relu."""

    def __init__(self, channels: int, downsample: bool) -> None:
        super().__init__()
        out = 2 * channels if downsample else channels
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, out, 1, stride=2 if downsample else 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(out)
        self.shortcut = torch.nn.Sequential(torch.nn.Conv2d(channels, out, 1, stride=2, bias=False),
                                            torch.nn.BatchNorm2d(out)) if downsample else None
        self.relu = torch.nn.ReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def residual_cnn() -> Any:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        Bottleneck(8, downsample=False), Bottleneck(8, downsample=True),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    for module in model.modules():  # statistics far from identity, so a wrong fold shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.3, 3)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)
    return model.eval()


def exported(model: Any, x: Any) -> Any:
    return torch.export.export(model, (x,)).module()


def targets(module: Any) -> list[Any]:
    return [node.target for node in module.graph.nodes if node.op == "call_function"]


def test_folding_removes_every_batch_norm_after_a_convolution_and_keeps_the_outputs() -> None:
    x = torch.randn(4, 3, 16, 16)
    module = exported(residual_cnn(), x)
    expected = module(x)

    assert fusion.fold_batch_norm(module) == 6
    assert torch.ops.aten.batch_norm.default not in targets(module)
    torch.testing.assert_close(module(torch.clone(x)), expected, rtol=1e-5, atol=1e-5)


def test_epilogue_fusion_turns_the_residual_network_into_fused_calls_with_the_same_outputs() -> None:
    x = torch.randn(4, 3, 16, 16)
    module = exported(residual_cnn(), x)
    expected = module(x)
    fusion.fold_batch_norm(module)

    fused_relu, fused_add = fusion.fuse_conv_epilogues(module, conv_relu_on_cpu, conv_add_relu_on_cpu)

    assert (fused_relu, fused_add) == (3, 2)
    assert targets(module).count(torch.ops.aten.relu.default) + targets(module).count(torch.ops.aten.relu_.default) == 0
    # Only the shortcut's strided convolution stays a plain convolution: it feeds the add as z.
    assert targets(module).count(torch.ops.aten.conv2d.default) == 1
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


def test_a_convolution_whose_output_is_also_read_elsewhere_is_not_fused() -> None:
    class Branching(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: Any) -> Any:
            y = self.conv(x)
            return torch.relu(y) + y  # the pre-activation value is needed too

    x = torch.randn(2, 3, 8, 8)
    module = exported(Branching().eval(), x)
    expected = module(x)

    assert fusion.fuse_conv_epilogues(module, conv_relu_on_cpu, conv_add_relu_on_cpu) == (0, 0)
    torch.testing.assert_close(module(x), expected)


def test_a_broadcasting_residual_add_is_not_fused() -> None:
    class Broadcast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.offset = torch.nn.Parameter(torch.randn(1, 4, 1, 1))

        def forward(self, x: Any) -> Any:
            return torch.relu(self.conv(x) + self.offset)

    x = torch.randn(2, 3, 8, 8)
    module = exported(Broadcast().eval(), x)
    expected = module(x)

    assert fusion.fuse_conv_epilogues(module, conv_relu_on_cpu, conv_add_relu_on_cpu) == (0, 0)
    torch.testing.assert_close(module(x), expected)


def test_a_batch_norm_in_front_of_a_convolution_stays_where_it_is() -> None:
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 3)).eval()
    model[0].running_var.fill_(4.0)
    x = torch.randn(2, 3, 8, 8)
    module = exported(model, x)
    expected = module(x)

    assert fusion.fold_batch_norm(module) == 0
    torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize(("stride", "padding", "dilation", "kernel"), [(1, 0, 1, 1), (2, 1, 1, 3), (2, 3, 1, 7),
                                                                       (1, 2, 2, 3), (3, 0, 1, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_fake_kernels_give_the_shape_dtype_and_layout_cudnn_returns(
        stride: int, padding: int, dilation: int, kernel: int, channels_last: bool) -> None:
    fusion.register_fake_kernels()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, 17, 15, dtype=torch.float16).contiguous(memory_format=layout)
    weight = torch.randn(8, 6, kernel, kernel, dtype=torch.float16)
    expected = F.conv2d(x.float(), weight.float(), None, stride, padding, dilation)

    with torch.device("meta"):
        meta_x, meta_weight = x.to("meta"), weight.to("meta")
        plain = torch.ops.aten.cudnn_convolution_relu(meta_x, meta_weight, None, [stride], [padding],
                                                      [dilation], 1)
        residual = torch.empty(expected.shape, dtype=torch.float16)
        with_add = torch.ops.aten.cudnn_convolution_add_relu(meta_x, meta_weight, residual, 1.0, None,
                                                             [stride] * 2, [padding] * 2, [dilation] * 2, 1)

    for output in (plain, with_add):
        assert output.shape == expected.shape
        assert output.dtype == torch.float16
        assert output.is_contiguous(memory_format=layout)

