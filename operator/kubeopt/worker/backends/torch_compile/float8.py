"""FP8 matrix products for torch-compile targets: every linear layer as a float8 (e4m3) GEMM.

GPUs with FP8 tensor cores (compute capability 8.9 and up: L4, L40S, H100, H200) multiply float8
operands at twice their bf16 rate. The rewrite works on a torch.export program's aten graph, so it
needs no nn.Linear modules (torchao's ``quantize_`` does, and an exported program has none):

- each weight is quantized once, per output channel: w = w_fp8 * scale_w, scale_w = amax / 448;
- each activation is quantized on the fly, per row (token), the same way;
- ``torch._scaled_mm`` multiplies the two with both scales applied in the epilogue and returns
  bf16; the bias is added after it, where Inductor fuses it with whatever follows.

Everything else (attention's batched products, norms, activations, convolutions) runs in bf16.
Layers whose sizes are not multiples of 16 stay bf16: the FP8 kernels need 16-byte-aligned rows.
"""

from __future__ import annotations

from typing import Any

from kubeopt.worker.backends.torch_compile.graph_rewrite import NewBuffer, replace_weighted_nodes
from kubeopt.worker.errors import InvalidSpec
from kubeopt.worker.frameworks import require

E4M3_MAX = 448.0  # the largest finite float8_e4m3fn value
FP8_PREFIX = "kubeopt_fp8_"
MIN_CAPABILITY = (8, 9)
# Set by quantize_linears. fp8_linear runs inside compiled graphs, where the lazy import that
# require() does would break the graph at every layer (and recompile past Dynamo's limit).
_torch: Any = None


def check_device(device: str) -> None:
    """FP8 targets need a GPU with FP8 tensor cores; say so by name rather than run slowly or fail deep."""
    torch = require("torch", "torch-compile")
    if not device.startswith("cuda"):
        raise InvalidSpec("precision fp8 needs a GPU with FP8 tensor cores (compute capability 8.9 or newer: "
                          "L4, L40S, H100, H200); set resources.gpu, or use fp16/bf16/int8 on a CPU")
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        raise InvalidSpec(f"precision fp8 needs compute capability 8.9 or newer; {name} has "
                          f"{capability[0]}.{capability[1]}: use fp16 or bf16 on this GPU")


def fp8_linear(x: Any, weight_fp8: Any, weight_scale: Any, bias: Any) -> Any:
    """x @ weight.T + bias with both operands in float8 e4m3 (row-wise activation scales)."""
    torch = _torch or require("torch", "torch-compile")
    leading, features = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, features).float()
    scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
    quantized = (rows / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    out = torch._scaled_mm(quantized, weight_fp8.t(), scale_a=scale, scale_b=weight_scale, out_dtype=x.dtype)
    if bias is not None:
        out = out + bias
    return out.reshape(*leading, weight_fp8.shape[0])


def quantize_weight(weight: Any) -> tuple[Any, Any]:
    """(float8 weight [out, in], float32 scales [1, out]) with one scale per output channel."""
    torch = require("torch", "torch-compile")
    with torch.no_grad():
        values = weight.float()
        scale = values.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
        quantized = (values / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return quantized.contiguous(), scale.t().contiguous()


def quantize_linears(module: Any) -> int:
    """Replace every aten.linear with a constant 2-D weight (sizes multiples of 16) by fp8_linear,
    in place; return how many were replaced."""
    global _torch
    torch = _torch = require("torch", "torch-compile")

    def replacement(node: Any, weight: Any) -> tuple[Any, tuple[Any, ...]] | None:
        if weight.dim() != 2 or weight.shape[0] % 16 or weight.shape[1] % 16:
            return None
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        quantized, scale = quantize_weight(weight)
        return fp8_linear, (node.args[0], NewBuffer("weight", quantized), NewBuffer("scale", scale), bias)

    return replace_weighted_nodes(module, {torch.ops.aten.linear.default}, replacement, FP8_PREFIX)
