"""Triton model-repository layout: <target>/<version>/model.{onnx,plan} and config.pbtxt.

Only ONNX Runtime and TensorRT artifacts have a Triton backend that loads them as they are
(their descriptions' ``triton``); the spec validator rejects the layout for other backends.
Each run of a target is one numeric model version (storage/runs.py); the config names the
platform and the batch limit, and the version to serve is added when a run is promoted. Triton
completes the tensor signatures from the model itself (auto-complete), so they cannot drift.
"""

from __future__ import annotations

from kubeopt.api.backends import describe
from kubeopt.api.spec import Target


def config_pbtxt(name: str, platform: str, max_batch_size: int) -> str:
    """The model's config.pbtxt without its version_policy (the promoted run adds that)."""
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
            "dynamic_batching { }\n")


def triton_config(target: Target, max_batch_size: int) -> str:
    triton = describe(target.backend).triton
    assert triton is not None, "the spec check refuses layout triton for this backend"
    return config_pbtxt(target.name, triton.platform, max_batch_size)
