"""Process-wide torch settings are borrowed by a target, not taken: restored after it.

A torch-compile target switches cuDNN's algorithm search (``cudnn.benchmark``), Inductor's
``freezing`` (int8 on a CPU) and Dynamo's ``recompile_limit``; a target's options may change
any other Inductor or Dynamo setting. These live in the process, so in a local run of several
targets (``kubeopt run``) the second target would inherit the first one's, and a result would
depend on the order of the targets. ``borrowed_torch_settings`` snapshots every such setting
when a target starts and puts back whatever changed when it ends (its build, validation and
benchmark all run inside, since cuDNN's search and frozen graphs act at run time too).

Only settings that changed are written back, one by one (Inductor's and Dynamo's config
modules warn when a deprecated key is written, so reloading all of them is avoided). A process
that has not imported torch (the ONNX Runtime image, a TensorFlow source) has nothing to borrow.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# (owner path under torch, attribute): the flags outside the config modules.
BACKEND_FLAGS: tuple[tuple[str, str], ...] = (
    ("backends.cudnn", "benchmark"),
    ("backends.cudnn", "deterministic"),
    ("backends.cuda.matmul", "allow_fp16_reduced_precision_reduction"),
    ("backends.cuda.matmul", "allow_bf16_reduced_precision_reduction"),
)
# torch >= 2.9 keeps fp32 precision per backend and operation (``fp32_precision``); the older
# switches (``allow_tf32``, ``set_float32_matmul_precision``) write through to these, and
# reading the old ones after a mix of both raises, so the new ones are what is borrowed.
FP32_PRECISION: tuple[tuple[str, str], ...] = tuple((path, "fp32_precision") for path in (
    "backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv", "backends.cudnn.rnn",
    "backends.mkldnn", "backends.mkldnn.matmul", "backends.mkldnn.conv", "backends.mkldnn.rnn"))
LEGACY_TF32: tuple[tuple[str, str], ...] = (("backends.cudnn", "allow_tf32"), ("backends.cuda.matmul", "allow_tf32"))
CONFIG_MODULES = ("_dynamo.config", "_inductor.config")


@dataclass(frozen=True)
class TorchSettings:
    """Every process-wide torch setting a target may change, as values."""

    flags: dict[str, Any]
    float32_matmul_precision: str | None  # torch < 2.9 only
    configs: dict[str, dict[str, Any]]


def _flags(torch: Any) -> tuple[tuple[str, str], ...]:
    if hasattr(torch.backends, "fp32_precision"):
        return FP32_PRECISION + BACKEND_FLAGS
    return LEGACY_TF32 + BACKEND_FLAGS


def _resolve(torch: Any, path: str) -> Any:
    owner = torch
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def _torch() -> Any | None:
    """torch if this process already imported it, else None. Never imported here: torch's LLVM
    and TensorFlow's clash in one process ("Option registered more than once"), and a target
    that can change torch's settings (torch-compile, a torch source) runs after the baseline
    imported torch anyway."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    import torch._dynamo.config
    import torch._inductor.config  # the config modules are part of the snapshot

    return torch


def snapshot(torch: Any) -> TorchSettings:
    """The settings now."""
    flags = {f"{path}.{name}": getattr(_resolve(torch, path), name) for path, name in _flags(torch)}
    configs = {path: _resolve(torch, path).get_config_copy() for path in CONFIG_MODULES}
    legacy = None if hasattr(torch.backends, "fp32_precision") else torch.get_float32_matmul_precision()
    return TorchSettings(flags, legacy, configs)


def restore(torch: Any, saved: TorchSettings) -> None:
    """Put back every setting that differs from ``saved``."""
    if saved.float32_matmul_precision is not None:
        torch.set_float32_matmul_precision(saved.float32_matmul_precision)  # first: it writes tf32 flags
    for path, name in _flags(torch):
        owner = _resolve(torch, path)
        if getattr(owner, name) != saved.flags[f"{path}.{name}"]:
            setattr(owner, name, saved.flags[f"{path}.{name}"])
    for path, before in saved.configs.items():
        module = _resolve(torch, path)
        now = module.get_config_copy()
        for key, value in before.items():
            if key in now and now[key] != value:
                setattr(module, key, value)


@contextmanager
def borrowed_torch_settings() -> Iterator[None]:
    """Run the block with torch's process-wide settings restored after it, whatever it changed."""
    torch = _torch()
    if torch is None:
        yield
        return
    saved = snapshot(torch)
    try:
        yield
    finally:
        restore(torch, saved)
