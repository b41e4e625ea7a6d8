from __future__ import annotations

from pathlib import Path

import pytest

from kubeopt.api.spec import TorchCompileOptions
from kubeopt.worker.backends.torch_compile.backend import compile_kwargs, phase_breakdown, with_rewrite_hint


def fake_modes(mode: str) -> dict[str, bool]:
    return {"max_autotune": True, "triton.cudagraphs": True} if mode == "max-autotune" else {}


def test_compile_passes_mode_fullgraph_dynamic_and_backend() -> None:
    options = TorchCompileOptions(mode="reduce-overhead", fullgraph=True, dynamic=False, backend="inductor")

    assert compile_kwargs(options) == {"mode": "reduce-overhead", "fullgraph": True, "dynamic": False,
                                       "backend": "inductor"}


def test_compile_with_options_merges_the_mode_into_them() -> None:
    options = TorchCompileOptions(mode="max-autotune", options={"epilogue_fusion": True, "triton.cudagraphs": False})

    kwargs = compile_kwargs(options, fake_modes)

    assert "mode" not in kwargs
    assert kwargs["options"] == {"max_autotune": True, "triton.cudagraphs": False, "epilogue_fusion": True}


def int8_gpu_context(tmp_path: Path) -> object:
    from kubeopt.api.load import parse_resource
    from kubeopt.worker.backends.base import BuildContext

    resource = parse_resource({
        "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
        "metadata": {"name": "m"},
        "spec": {"model": {"uri": "m.pt2", "format": "torch-export", "inputs": [{"name": "x", "shape": [-1, 4]}]},
                 "targets": [{"name": "q", "backend": "torch-compile", "precision": "int8"}],
                 "calibration": {"uri": "c.npz"}, "output": {"uri": str(tmp_path)}}})
    return BuildContext(resource.spec, resource.spec.targets[0], None, "cuda", tmp_path, tmp_path,  # type: ignore[arg-type]
                        None)


def test_torch_compile_int8_on_a_gpu_needs_an_exported_program(tmp_path: Path) -> None:
    import torch

    from kubeopt.worker.backends.torch_compile.backend import TorchCompileBackend
    from kubeopt.worker.errors import InvalidSpec

    scripted = torch.jit.script(torch.nn.Linear(16, 16))

    with pytest.raises(InvalidSpec, match=r"target q: precision int8 on a GPU needs model\.format torch-export"):
        TorchCompileBackend()._to_int8_gpu(torch, scripted, TorchCompileOptions(), int8_gpu_context(tmp_path))


def test_torch_compile_int8_on_a_gpu_with_nothing_to_quantize_says_to_use_fp16(tmp_path: Path) -> None:
    import torch

    from kubeopt.worker.backends.torch_compile.backend import TorchCompileBackend
    from kubeopt.worker.errors import InvalidSpec

    odd = torch.nn.Linear(10, 6)  # sizes that are not multiples of 8
    module = torch.export.export(odd, (torch.randn(2, 10),)).module()

    with pytest.raises(InvalidSpec, match=r"found no linear layer or 1x1 convolution .* use fp16"):
        TorchCompileBackend()._to_int8_gpu(torch, module, TorchCompileOptions(), int8_gpu_context(tmp_path))


def test_compile_seconds_split_into_compiler_autotuning_first_run_and_torchs_largest_steps() -> None:
    before = {"_compile.compile_inner": 10.0, "mm_template_autotuning": 1.0}
    after = {"_compile.compile_inner": 16.0, "mm_template_autotuning": 3.5, "conv_template_precompiling": 0.5,
             "GraphLowering.run": 2.0}

    phases = phase_breakdown(9.0, before, after)

    assert phases == {"total": 9.0, "cacheLoad": 0.0, "compiler": 6.0, "inductorAutotune": 3.0, "firstRun": 3.0,
                      "steps": {"_compile.compile_inner": 6.0, "mm_template_autotuning": 2.5,
                                "GraphLowering.run": 2.0, "conv_template_precompiling": 0.5}}


def test_loading_the_stored_compiler_cache_counts_as_compile_time_apart_from_the_first_run() -> None:
    phases = phase_breakdown(1.5, {"_compile.compile_inner": 1.0}, {"_compile.compile_inner": 1.6}, cache_load=0.2)

    assert (phases["total"], phases["cacheLoad"], phases["compiler"], phases["firstRun"]) == (1.5, 0.2, 0.6, 0.7)


def test_a_build_failure_after_epilogue_fusion_says_how_to_build_without_it() -> None:
    from kubeopt.worker.errors import BuildFailed

    error = BuildFailed("torch.compile failed at batch 32: RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED")

    hinted = with_rewrite_hint(error, {"foldedBatchNorms": 53, "convRelu": 33, "convAddRelu": 16})

    assert str(hinted).startswith(str(error))
    assert "rewritten 49 convolutions" in str(hinted)
    assert "torchCompile.convEpilogueFusion: false" in str(hinted)
    assert with_rewrite_hint(error, None) is error
