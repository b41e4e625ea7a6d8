"""Graph rewrites for CNN inference on CUDA: conv + batch-norm folding and cuDNN fused epilogues.

Inductor calls cuDNN for every convolution and runs what follows it (bias, residual add,
ReLU) as separate Triton kernels, so each activation is written, read back and written
again. cuDNN's runtime fusion applies that epilogue while the convolution's output is still
on chip: ``aten.cudnn_convolution_relu`` computes relu(conv(x) + bias) and
``aten.cudnn_convolution_add_relu`` relu(conv(x) + alpha * z + bias) in one call (the ops
TorchScript's frozen-graph pass uses on CUDA).

The rewrites work on the aten-level graph of a torch.export program's module:

1. ``fold_batch_norm`` folds each inference batch norm into the convolution before it,
   so the convolution carries the bias the epilogue needs;
2. ``fuse_conv_epilogues`` replaces conv -> relu and conv -> add -> relu chains with the fused ops.

Neither op has a meta kernel in torch, so ``register_fake_kernels`` gives them one: torch.compile
traces with fake tensors and needs the output's shape and memory format without running cuDNN.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeopt.worker.frameworks import require

FUSED_PREFIX = "kubeopt_folded_"


@dataclass(frozen=True)
class FusionReport:
    """What the rewrites changed, for compile.json and the report."""

    folded_batch_norms: int
    conv_relu: int
    conv_add_relu: int

    def as_dict(self) -> dict[str, int]:
        return {"foldedBatchNorms": self.folded_batch_norms, "convRelu": self.conv_relu,
                "convAddRelu": self.conv_add_relu}


@dataclass(frozen=True)
class ConvArgs:
    """aten.conv2d.default's arguments with torch's defaults filled in."""

    input: Any
    weight: Any
    bias: Any
    stride: list[int]
    padding: list[int]
    dilation: list[int]
    groups: int


def _pair(value: Any) -> list[int]:
    values = [int(v) for v in value]
    return values * 2 if len(values) == 1 else values


def conv_args(node: Any) -> ConvArgs | None:
    """The arguments of a 2-D convolution node, or None when it is not one the fused ops can take
    (string padding such as "same" has its own overload and is left alone)."""
    torch = require("torch", "torch-compile")
    if node.op != "call_function" or node.target is not torch.ops.aten.conv2d.default:
        return None
    names = ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]
    defaults: dict[str, Any] = {"bias": None, "stride": [1], "padding": [0], "dilation": [1], "groups": 1}
    values = {**defaults, **dict(zip(names, node.args, strict=False)), **node.kwargs}
    return ConvArgs(values["input"], values["weight"], values["bias"], _pair(values["stride"]),
                    _pair(values["padding"]), _pair(values["dilation"]), int(values["groups"]))


def _constant(module: Any, node: Any) -> Any:
    """The tensor behind a get_attr node, None for None, and False for anything else."""
    if node is None:
        return None
    if getattr(node, "op", None) == "get_attr":
        return operator.attrgetter(node.target)(module)
    return False


def _batch_norm_input(node: Any) -> tuple[Any, list[Any]] | None:
    """(the normalised node, [weight, bias, mean, var, eps]) for an inference batch norm."""
    torch = require("torch", "torch-compile")
    if node.op != "call_function":
        return None
    if node.target is torch.ops.aten.batch_norm.default:
        source, weight, bias, mean, var, training, _momentum, eps = node.args[:8]
        return (None if training else (source, [weight, bias, mean, var, eps]))
    if node.target is operator.getitem and node.args[1] == 0:
        parent = node.args[0]
        if parent.op == "call_function" and \
                parent.target is torch.ops.aten._native_batch_norm_legit_no_training.default:
            source, weight, bias, mean, var, _momentum, eps = parent.args[:7]
            return source, [weight, bias, mean, var, eps]
    return None


def fold_batch_norm(module: Any) -> int:
    """Fold every inference batch norm that directly follows a convolution (whose output
    nothing else reads) into that convolution's weight and bias; return how many were folded."""
    torch = require("torch", "torch-compile")
    graph = module.graph
    folded = 0
    for node in list(graph.nodes):
        found = _batch_norm_input(node)
        if found is None:
            continue
        conv, (gamma_node, beta_node, mean_node, var_node, eps) = found
        args = conv_args(conv) if hasattr(conv, "op") else None
        if args is None or len(conv.users) != 1:
            continue
        weight, bias = _constant(module, args.weight), _constant(module, args.bias)
        gamma, beta = _constant(module, gamma_node), _constant(module, beta_node)
        mean, var = _constant(module, mean_node), _constant(module, var_node)
        if any(value is False for value in (weight, bias, gamma, beta, mean, var)) or weight is None:
            continue
        with torch.no_grad():
            scale = torch.rsqrt(var.double() + float(eps))
            if gamma is not None:
                scale = scale * gamma.double()
            shift = -mean.double() * scale if bias is None else (bias.double() - mean.double()) * scale
            if beta is not None:
                shift = shift + beta.double()
            new_weight = (weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))).to(weight.dtype)
            new_bias = shift.to(weight.dtype)
        weight_name, bias_name = f"{FUSED_PREFIX}{folded}_weight", f"{FUSED_PREFIX}{folded}_bias"
        module.register_buffer(weight_name, new_weight.contiguous())
        module.register_buffer(bias_name, new_bias.contiguous())
        with graph.inserting_before(conv):
            weight_attr, bias_attr = graph.get_attr(weight_name), graph.get_attr(bias_name)
        conv.args = (args.input, weight_attr, bias_attr, args.stride, args.padding, args.dilation, args.groups)
        conv.kwargs = {}
        node.replace_all_uses_with(conv)
        graph.erase_node(node)
        if node.target is operator.getitem and not node.args[0].users:
            graph.erase_node(node.args[0])
        folded += 1
    graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    module.recompile()
    return folded


def _same_shape(first: Any, second: Any) -> bool:
    """Both nodes carry traced shapes and they are equal (the fused add does not broadcast)."""
    a, b = first.meta.get("val"), getattr(second, "meta", {}).get("val")
    return a is not None and b is not None and tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype


def fuse_conv_epilogues(module: Any, conv_relu: Callable[..., Any] | None = None,
                        conv_add_relu: Callable[..., Any] | None = None) -> tuple[int, int]:
    """Replace conv -> relu with one conv_relu call and conv -> add -> relu with one conv_add_relu
    call (cuDNN's fused ops unless others are given, as tests on the CPU do). Returns the counts."""
    torch = require("torch", "torch-compile")
    aten = torch.ops.aten
    conv_relu = conv_relu or aten.cudnn_convolution_relu.default
    conv_add_relu = conv_add_relu or aten.cudnn_convolution_add_relu.default
    relus = {aten.relu.default, aten.relu_.default}
    adds = {aten.add.Tensor, aten.add_.Tensor}
    graph = module.graph
    fused_relu = fused_add = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in relus:
            continue
        source = node.args[0]
        args = conv_args(source)
        if args is not None and len(source.users) == 1:
            with graph.inserting_before(node):
                fused = graph.call_function(conv_relu, (args.input, args.weight, args.bias, args.stride,
                                                        args.padding, args.dilation, args.groups))
            fused.meta = dict(node.meta)
            node.replace_all_uses_with(fused)
            graph.erase_node(node)
            graph.erase_node(source)
            fused_relu += 1
            continue
        if source.op != "call_function" or source.target not in adds or len(source.users) != 1 \
                or source.kwargs.get("alpha", 1) != 1 or len(source.args) != 2:
            continue
        for conv, residual in (source.args, tuple(reversed(source.args))):
            args = conv_args(conv) if hasattr(conv, "op") else None
            if args is None or len(conv.users) != 1 or not hasattr(residual, "op") or not _same_shape(conv, residual):
                continue
            with graph.inserting_before(node):
                fused = graph.call_function(conv_add_relu, (args.input, args.weight, residual, 1.0, args.bias,
                                                            args.stride, args.padding, args.dilation, args.groups))
            fused.meta = dict(node.meta)
            node.replace_all_uses_with(fused)
            graph.erase_node(node)
            graph.erase_node(source)
            graph.erase_node(conv)
            fused_add += 1
            break
    graph.lint()
    module.recompile()
    return fused_relu, fused_add


def optimize_conv_graph(module: Any) -> FusionReport:
    """Both rewrites, in place, on a torch.export program's module; register the fake kernels."""
    register_fake_kernels()
    folded = fold_batch_norm(module)
    fused_relu, fused_add = fuse_conv_epilogues(module)
    return FusionReport(folded, fused_relu, fused_add)


def _conv_output(input: Any, weight: Any, stride: list[int], padding: list[int], dilation: list[int]) -> Any:
    """An empty tensor shaped, typed and laid out as cuDNN's fused convolution returns it."""
    torch = require("torch", "torch-compile")
    size = [input.shape[0], weight.shape[0]]
    for axis in range(2, input.dim()):
        extent = (weight.shape[axis] - 1) * dilation[axis - 2] + 1
        size.append((input.shape[axis] + 2 * padding[axis - 2] - extent) // stride[axis - 2] + 1)

    def channels_last(tensor: Any) -> bool:
        return tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) \
            and not tensor.is_contiguous()

    # cudnn_conv_suggest_memory_format: channels-last if the input or the weight is.
    layout = torch.channels_last if channels_last(input) or channels_last(weight) else torch.contiguous_format
    return torch.empty(size, dtype=input.dtype, device=input.device).contiguous(memory_format=layout)


_registered: list[Any] = []


def register_fake_kernels() -> None:
    """Meta kernels for the two fused ops (once per process), so that torch.compile can trace them."""
    if _registered:
        return
    torch = require("torch", "torch-compile")
    library = torch.library.Library("aten", "IMPL")

    def conv_relu_meta(input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
                       groups: Any) -> Any:
        return _conv_output(input, weight, _pair(stride), _pair(padding), _pair(dilation))

    def conv_add_relu_meta(input: Any, weight: Any, z: Any, alpha: Any, bias: Any, stride: Any, padding: Any,
                           dilation: Any, groups: Any) -> Any:
        return _conv_output(input, weight, _pair(stride), _pair(padding), _pair(dilation))

    kernels = {"cudnn_convolution_relu": conv_relu_meta, "cudnn_convolution_add_relu": conv_add_relu_meta}
    for name, kernel in kernels.items():
        # A torch that ships its own meta kernel for the op keeps it.
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{name}", "Meta"):
            library.impl(name, kernel, "Meta")
    _registered.append(library)  # the registration lives as long as the Library object
