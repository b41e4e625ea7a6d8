"""INT8 on a GPU for torch-compile targets: linear layers and 1x1 convolutions as int8 GEMMs.

Tensor cores multiply int8 operands at twice their fp16 rate (Turing and newer; H100: about
1,979 dense TOPS against 989 TFLOPS). The rewrite works on a torch.export program's aten graph,
as ``kubeopt.worker.backends.torch_compile.float8`` does, because exported programs have no nn.Linear modules for
torchao's ``quantize_`` to find. The scheme is torchao's int8 dynamic-activation/int8-weight:

- each weight is quantized once, symmetrically, per output channel: w = w_int8 * scale_w;
- each activation row (a token, or a pixel of a 1x1 convolution in channels-last order) is
  quantized on the fly with its own scale, so no calibration range can clip it;
- ``torch._int_mm`` multiplies the two into int32 (cuBLASLt or Inductor's Triton template, which
  can fuse the rescaling, bias and whatever pointwise op follows into its epilogue).

A 1x1 convolution with no padding is a matrix product over channels: in channels-last memory
its input is already an [N*H*W, C] matrix. Larger kernels stay fp16 convolutions (cuDNN,
with ``kubeopt.worker.backends.torch_compile.fusion``'s fused epilogues). Sizes must be multiples of 8 (the int8
kernels' alignment). The int8 kernels need more than 16 rows: a product whose row count is
fixed and smaller uses the dequantized weight; one whose row count is dynamic and may be smaller
(a classifier's batch) gets 16 zero rows appended, so that one exported program serves batch 1
and batch 128 alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeopt.worker.backends.torch_compile.fusion import conv_args
from kubeopt.worker.backends.torch_compile.graph_rewrite import NewBuffer, replace_weighted_nodes
from kubeopt.worker.errors import InvalidSpec
from kubeopt.worker.frameworks import require

INT8_MAX = 127.0
INT8_PREFIX = "kubeopt_int8_"
ALIGNMENT = 8
MIN_ROWS = 17  # torch._int_mm on CUDA takes more than 16 rows
MIN_CAPABILITY = (7, 5)  # int8 tensor-core GEMMs through cuBLASLt
# How activations are scaled, for the target's report in place of a calibration summary.
SCHEME = {"activations": "int8, symmetric, one scale per row computed at run time (no calibration data read)",
          "weights": "int8, symmetric, one scale per output channel", "rest": "fp16"}
# Set by quantize_matmuls: the replacement functions run inside compiled graphs, where the lazy
# import that require() does would break the graph at every layer.
_torch: Any = None


@dataclass(frozen=True)
class Int8Report:
    """What the rewrite changed, for compile.json and the report."""

    linears: int
    conv1x1: int

    def as_dict(self) -> dict[str, int]:
        return {"linears": self.linears, "conv1x1": self.conv1x1}


def check_device(device: str) -> None:
    """The GPU int8 path needs int8 tensor cores; a CPU int8 target takes the PT2E path instead."""
    torch = require("torch", "torch-compile")
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        raise InvalidSpec(f"precision int8 on a GPU needs compute capability 7.5 or newer; {name} has "
                          f"{capability[0]}.{capability[1]}: use fp16 on this GPU")


def quantize_weight(weight: Any) -> tuple[Any, Any]:
    """(int8 weight [out, in], float32 scales [1, out]); a 1x1 convolution's [out, in, 1, 1] weight
    is flattened to its matrix."""
    torch = require("torch", "torch-compile")
    with torch.no_grad():
        values = weight.float().reshape(weight.shape[0], -1)
        scale = values.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / INT8_MAX
        quantized = (values / scale).round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return quantized.contiguous(), scale.t().contiguous()


def int8_matmul(rows: Any, weight_int8: Any, weight_scale: Any) -> Any:
    """rows [m, k] @ weight.T in int8 with per-row activation scales; returns rows' dtype."""
    torch = _torch or require("torch", "torch-compile")
    count = rows.shape[0]
    values = rows.float()
    if isinstance(count, int) and count < MIN_ROWS:  # a static shape (one compiled graph per batch)
        return (values @ (weight_int8.float() * weight_scale.t()).t()).to(rows.dtype)
    if not _known_true(count >= MIN_ROWS):
        # A dynamic row count that may be small (a classifier's batch): branching on it would make
        # torch.export narrow the program's batch range to one side, so that the published .pt2
        # serves batch 1 or batch 128, not both. Zero rows pad it past the kernel's minimum instead.
        values = torch.cat([values, values.new_zeros(MIN_ROWS - 1, values.shape[1])])
    scale = values.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / INT8_MAX
    quantized = (values / scale).round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    product = torch._int_mm(quantized, weight_int8.t())
    return (product[:count].float() * scale[:count] * weight_scale).to(rows.dtype)


def _known_true(condition: Any) -> bool:
    """Whether a (possibly symbolic) condition holds for every shape, without adding a guard."""
    torch = _torch or require("torch", "torch-compile")
    return bool(torch.fx.experimental.symbolic_shapes.statically_known_true(condition))


def int8_linear(x: Any, weight_int8: Any, weight_scale: Any, bias: Any) -> Any:
    """aten.linear with an int8 weight."""
    leading, features = x.shape[:-1], x.shape[-1]
    out = int8_matmul(x.reshape(-1, features), weight_int8, weight_scale)
    if bias is not None:
        out = out + bias
    return out.reshape(*leading, weight_int8.shape[0])


def int8_conv1x1(x: Any, weight_int8: Any, weight_scale: Any, bias: Any, stride: list[int]) -> Any:
    """A 1x1, unpadded, ungrouped convolution with an int8 weight. The output is NCHW-shaped in
    channels-last memory, as cuDNN returns it for a channels-last input."""
    if stride[0] != 1 or stride[1] != 1:
        x = x[:, :, ::stride[0], ::stride[1]]
    batch, channels, height, width = x.shape
    out = int8_matmul(x.permute(0, 2, 3, 1).reshape(-1, channels), weight_int8, weight_scale)
    if bias is not None:
        out = out + bias
    return out.reshape(batch, height, width, weight_int8.shape[0]).permute(0, 3, 1, 2)


def _aligned(out_features: int, in_features: int) -> bool:
    return out_features % ALIGNMENT == 0 and in_features % ALIGNMENT == 0


def quantize_matmuls(module: Any) -> Int8Report:
    """Replace, in place, every aten.linear and every 1x1 unpadded ungrouped aten.conv2d whose
    weight is a constant with sizes that are multiples of 8 by its int8 form."""
    global _torch
    torch = _torch = require("torch", "torch-compile")
    aten = torch.ops.aten

    def linear(node: Any, weight: Any) -> tuple[Any, tuple[Any, ...]] | None:
        if weight.dim() != 2 or not _aligned(*weight.shape):
            return None
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        quantized, scale = quantize_weight(weight)
        return int8_linear, (node.args[0], NewBuffer("weight", quantized), NewBuffer("scale", scale), bias)

    def conv1x1(node: Any, weight: Any) -> tuple[Any, tuple[Any, ...]] | None:
        args = conv_args(node)
        if args is None or weight.dim() != 4 or tuple(weight.shape[2:]) != (1, 1) or args.groups != 1 \
                or any(args.padding) or not _aligned(weight.shape[0], weight.shape[1]):
            return None
        quantized, scale = quantize_weight(weight)
        return int8_conv1x1, (args.input, NewBuffer("weight", quantized), NewBuffer("scale", scale), args.bias,
                              args.stride)

    linears = replace_weighted_nodes(module, {aten.linear.default}, linear, INT8_PREFIX + "linear_")
    convs = replace_weighted_nodes(module, {aten.conv2d.default}, conv1x1, INT8_PREFIX + "conv_")
    return Int8Report(linears, convs)
