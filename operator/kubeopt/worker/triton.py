"""Triton model-repository layout: <target>/<version>/model.{onnx,plan} and config.pbtxt.

Only ONNX Runtime and TensorRT artifacts have a Triton backend that loads them as they are
(their descriptions' ``triton``); the spec validator rejects the layout for other backends.
The config names the platform and the batch limit and lets Triton complete the tensor
signatures from the model itself (auto-complete), so it cannot drift from the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kubeopt.api.backends import describe
from kubeopt.api.spec import Target

MODEL_VERSION = "1"


def config_pbtxt(name: str, platform: str, max_batch_size: int) -> str:
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
            "dynamic_batching { }\n")


def to_triton_layout(folder: Path, target: Target, max_batch_size: int) -> None:
    """Move the model file into <target>/1/ and write <target>/config.pbtxt inside ``folder``."""
    triton = describe(target.backend).triton
    assert triton is not None, "the spec check refuses layout triton for this backend"
    model_file, platform = triton.model_file, triton.platform
    version_dir = folder / target.name / MODEL_VERSION
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder / model_file), str(version_dir / model_file))
    (folder / target.name / "config.pbtxt").write_text(config_pbtxt(target.name, platform, max_batch_size))
