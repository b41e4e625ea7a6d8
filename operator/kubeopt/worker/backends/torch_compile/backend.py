"""torch.compile backend: every option the lecture lists, fp16/bf16, channels-last and int8.

INT8 on CPU is PT2E static quantization with the x86 Inductor quantizer, calibrated on the
spec's data, then compiled by Inductor with freezing (which folds the quantized weights).
fp8 (GPUs with compute capability 8.9+) runs every linear layer as a float8 GEMM
(``kubeopt.worker.backends.torch_compile.float8``) and the rest in bf16.
On a GPU, int8 (``kubeopt.worker.backends.torch_compile.int8``) runs linear layers and 1x1 convolutions as int8 GEMMs
with per-channel weight scales and per-row activation scales computed at run time (torchao's
dynamic scheme, so the calibration data is not read), and the rest in fp16.

On a GPU, torch.export models first go through ``kubeopt.worker.backends.torch_compile.fusion``: batch norm folded
into the convolution before it, and conv+bias(+residual)+ReLU run as one cuDNN fused call
(``convEpilogueFusion``, on by default; ResNet-50 FP16 on an H100 at batch 128 went from 21,927 to
29,809 img/s in one run, bench/results/h100_resnet50_fused.json).

Compile time is the first call's time at each benchmark batch size. The compiler's caches
(``torch.compiler.save_cache_artifacts``) are stored with the artifact; the next run of the
same target loads them first, so it compiles from a warm cache.

What is compiled, validated and timed is the published file, not the object in memory: the
build writes ``model.pt2``, ``serve.json`` (imports, settings, ``torch.compile`` arguments) and
``load.py`` (``kubeopt.worker.backends.torch_compile.pt2_load``); ``load`` runs that ``load.py`` on the written files
as a server would, then compiles the result at each batch size.
"""

from __future__ import annotations

import json
import logging
import runpy
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from kubeopt.api.spec import BackendName, Precision, TorchCompileOptions
from kubeopt.worker import calibration
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.torch_compile import float8, fusion, int8, pt2_load
from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.calibration_methods import Tool, calibrator
from kubeopt.worker.errors import BuildFailed, InvalidSpec, UnsupportedOp, first_line
from kubeopt.worker.frameworks import require
from kubeopt.worker.source import Representation

log = logging.getLogger(__name__)
CACHE_FILE = "compile-cache.bin"
LOADER_FILE = "load.py"  # pt2_load.py of this package, published beside the model and run to validate it
# Operator namespaces that torch registers only when a module is imported, and that module.
OPERATOR_MODULES = {"quantized_decomposed": "torch.ao.quantization.fx._decomposed"}
STEPS_KEPT = 12


def compile_kwargs(options: TorchCompileOptions, inductor_modes: Any = None) -> dict[str, Any]:
    """torch.compile keyword arguments. torch refuses mode and options together, so with options
    the mode's own settings are merged into them (as torch does internally)."""
    kwargs: dict[str, Any] = {"fullgraph": options.fullgraph, "dynamic": options.dynamic, "backend": options.backend}
    if not options.options:
        kwargs["mode"] = options.mode
        return kwargs
    merged: dict[str, Any] = {}
    if options.mode != "default" and inductor_modes is not None:
        merged.update(inductor_modes(options.mode))
    merged.update(options.options)
    kwargs["options"] = merged
    return kwargs


def compiler_seconds(torch: Any) -> dict[str, float]:
    """torch's running totals of compile time per phase (``torch._dynamo.utils.compile_times``)."""
    try:
        names, values = torch._dynamo.utils.compile_times(repr="csv", aggregate=True)
    except Exception:  # a private API: without it the breakdown is left out, the total still stands
        return {}
    return {name: float(value) for name, value in zip(names, values, strict=False)}


def phase_breakdown(total: float, before: dict[str, float], after: dict[str, float],
                    cache_load: float = 0.0) -> dict[str, Any]:
    """Split a target's compile seconds into loading the stored compiler cache, Dynamo/Inductor
    compilation (of which Inductor's autotuning) and the rest: running the model the first time,
    which includes cuDNN's algorithm search and CUDA-graph warm-up."""
    def spent(match: Callable[[str], bool]) -> float:
        return sum(after[name] - before.get(name, 0.0) for name in after if match(name))

    compiling = spent(lambda name: name == "_compile.compile_inner")
    # select_algorithm times each template's autotuning as "<template>_template_autotuning" and
    # "<template>_template_precompiling" (max-autotune); both run inside compile_inner.
    autotune = spent(lambda name: name.endswith(("_template_autotuning", "_template_precompiling")))
    # torch's own timed steps (nested, so they overlap), the largest first: where compiling went.
    steps = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    largest = dict(sorted(((n, v) for n, v in steps.items() if v >= 0.05), key=lambda item: -item[1])[:STEPS_KEPT])
    return {"total": round(total, 2), "cacheLoad": round(cache_load, 2), "compiler": round(compiling, 2),
            "inductorAutotune": round(autotune, 2), "firstRun": round(max(total - cache_load - compiling, 0.0), 2),
            "steps": largest}


def is_unsupported_by_dynamo(torch: Any, error: BaseException) -> bool:
    """True when Dynamo could not trace the model (``torch._dynamo.exc.Unsupported`` and its
    subclasses, a graph break under ``fullgraph=True`` included), checked on torch's own class."""
    unsupported = getattr(getattr(getattr(torch, "_dynamo", None), "exc", None), "Unsupported", None)
    return isinstance(unsupported, type) and isinstance(error, unsupported)


def with_rewrite_hint(error: BuildFailed, fused: dict[str, int] | None) -> BuildFailed:
    """A build failure of a graph kubeopt rewrote says how to rule the rewrite out: cuDNN can
    refuse a fused convolution that its plain one would run."""
    if not fused:
        return error
    return BuildFailed(f"{error} (convEpilogueFusion had rewritten {fused['convRelu'] + fused['convAddRelu']} "
                       "convolutions into cuDNN fused calls; set torchCompile.convEpilogueFusion: false to build "
                       "the graph as exported)")


def serve_recipe(torch: Any, context: BuildContext, saved: str, namespaces: set[str], dtype: Any,
                 frozen: bool) -> dict[str, Any]:
    """serve.json: what load.py needs to load and compile the saved program as it was measured."""
    options = context.target.torch_compile or TorchCompileOptions()
    kwargs = compile_kwargs(options, torch._inductor.list_mode_options)
    dynamo: dict[str, Any] = {}
    if options.dynamic is None:
        # Unset means one static graph per benchmarked batch size: torch's automatic
        # dynamic shapes would recompile the second size as a slower symbolic graph, and
        # frozen int8 graphs fail stride guards when recompiled that way (torch 2.15).
        kwargs["dynamic"] = False
        dynamo["recompile_limit"] = max(8, 2 * len(context.spec.benchmark.batch_sizes))
    on_gpu = context.device.startswith("cuda")
    return {"file": saved, "device": context.device,
            "imports": sorted({OPERATOR_MODULES[n] for n in namespaces if n in OPERATOR_MODULES}),
            "dynamo": dynamo,
            # Freezing folds the quantized weights into constants; Inductor then picks int8 kernels.
            "inductor": {"freezing": True} if frozen else {},
            "cudnnBenchmark": options.cudnn_benchmark if on_gpu else None, "channelsLast": options.channels_last,
            "inputDtype": str(dtype).removeprefix("torch.") if dtype is not None else None, "compile": kwargs}


class TorchCompileBackend:
    name: ClassVar[BackendName] = BackendName.TORCH_COMPILE
    consumes: ClassVar[Representation] = Representation.TORCH

    def check_available(self, device: str) -> None:
        torch = require("torch", self.name.value)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidSpec("torch-compile: device cuda requested but torch sees no GPU")

    def build(self, context: BuildContext) -> Built:
        torch = require("torch", self.name.value)
        options = context.target.torch_compile or TorchCompileOptions()
        precision = context.target.precision
        if precision is Precision.FP8:  # refuse before loading the model, not after
            float8.check_device(context.device)
        on_gpu = context.device.startswith("cuda")
        gpu_int8 = precision is Precision.INT8 and on_gpu
        if gpu_int8:
            int8.check_device(context.device)
        names = [spec.name for spec in context.spec.model.inputs]
        module = context.source.torch_module()
        # fp8 runs its linear layers in float8 and everything else in bf16; int8 on a GPU runs its
        # matrix products in int8 and everything else in fp16.
        dtype = {Precision.FP16: torch.float16, Precision.BF16: torch.bfloat16,
                 Precision.FP8: torch.bfloat16}.get(precision, torch.float16 if gpu_int8 else None)
        provenance = None
        int8_layers = None
        if gpu_int8:
            module = module.to(dtype)
            fused, int8_layers = self._to_int8_gpu(torch, module, options, context)
            provenance = dict(int8.SCHEME)
        else:
            fused = self._fuse(torch, module, options, context)
            if precision is Precision.INT8:
                module, provenance = self._quantize(torch, module, context, names)
            elif dtype is not None:
                module = module.to(dtype)
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        fp8_layers = self._to_fp8(torch, module, context) if precision is Precision.FP8 else None
        saved, namespaces = self._save(torch, module, context, names, dtype)
        frozen = precision is Precision.INT8 and not gpu_int8  # PT2E int8: Inductor folds the quantized weights
        recipe = serve_recipe(torch, context, saved, namespaces, dtype, frozen)
        (context.artifact_dir / pt2_load.RECIPE).write_text(json.dumps(recipe, indent=2))
        shutil.copyfile(pt2_load.__file__, context.artifact_dir / LOADER_FILE)
        settings = {"mode": options.mode, "fullgraph": options.fullgraph, "dynamic": options.dynamic,
                    "backend": options.backend, "options": options.options, "channelsLast": options.channels_last,
                    "cudnnBenchmark": options.cudnn_benchmark, "convEpilogueFusion": fused, "fp8Linears": fp8_layers,
                    "int8": int8_layers, "precision": precision.value, "torch": torch.__version__}
        return Built(None, 0.0, calibration=provenance, details=settings)

    def load(self, context: BuildContext, built: Built) -> Built:
        """Load the written program with the published load.py and compile it as a server would,
        at each benchmark batch size (the compile seconds); the runner runs that compiled program."""
        torch = require("torch", self.name.value)
        loader = runpy.run_path(str(context.artifact_dir / LOADER_FILE))
        recipe = loader["read_recipe"](context.artifact_dir)
        try:
            module = loader["load_module"](context.artifact_dir, context.device)
        except Exception as error:
            raise BuildFailed(f"the saved {recipe['file']} does not load back: {first_line(error)}") from error
        loading_started = time.perf_counter()
        cache_hit = self._load_cache(torch, context)
        cache_load = time.perf_counter() - loading_started
        try:
            compiled = loader["compile_module"](module, recipe)
        except Exception as error:  # bad backend name or options
            raise InvalidSpec(f"torchCompile: {first_line(error)}") from error
        names = [spec.name for spec in context.spec.model.inputs]
        runner = TorchRunner(compiled, names, context.device, loader["input_dtype"](recipe), recipe["channelsLast"])
        before = compiler_seconds(torch)
        try:
            compile_seconds = self._warm(runner, context) + cache_load
        except BuildFailed as error:
            raise with_rewrite_hint(error, built.details.get("convEpilogueFusion")) from error
        phases = phase_breakdown(compile_seconds, before, compiler_seconds(torch), cache_load)
        self._save_cache(torch, context)
        settings = {**built.details, "compileSeconds": phases}
        (context.artifact_dir / "compile.json").write_text(json.dumps(settings, indent=2))
        files = [p.name for p in context.artifact_dir.iterdir()
                 if p.name.startswith(("model.", "compile")) or p.name in (LOADER_FILE, pt2_load.RECIPE)]
        return replace(built, runner=runner, compile_seconds=compile_seconds, cache_hit=cache_hit, details=settings,
                       model_files=tuple(sorted(files)))

    def _fuse(self, torch: Any, module: Any, options: TorchCompileOptions,
              context: BuildContext) -> dict[str, int] | None:
        """Fold batch norms and fuse conv epilogues (on a GPU, FX graphs; GPU int8 does its own in
        ``_to_int8_gpu``); what changed."""
        if not options.conv_epilogue_fusion or not context.device.startswith("cuda") \
                or not isinstance(module, torch.fx.GraphModule):
            return None
        try:
            report = fusion.optimize_conv_graph(module)
        except Exception as error:  # a graph shape the rewrite did not expect is a kubeopt bug, not the user's
            raise BuildFailed(f"convEpilogueFusion failed ({first_line(error)}); set "
                              "torchCompile.convEpilogueFusion: false to compile without it") from error
        log.info("conv epilogue fusion: %s", report.as_dict())
        return report.as_dict()

    def _to_int8_gpu(self, torch: Any, module: Any, options: TorchCompileOptions,
                     context: BuildContext) -> tuple[dict[str, int] | None, dict[str, int]]:
        """Fold batch norms, turn linear layers and 1x1 convolutions into int8 GEMMs, then fuse the
        remaining convolutions' epilogues; (what the fusion changed, what went to int8)."""
        if not isinstance(module, torch.fx.GraphModule):
            raise InvalidSpec(f"target {context.target.name}: precision int8 on a GPU needs model.format "
                              "torch-export (the rewrite works on the exported graph); TorchScript models can use "
                              "fp16 or bf16 there, or int8 on a CPU")
        fusing = options.conv_epilogue_fusion
        folded = 0
        try:
            if fusing:
                fusion.register_fake_kernels()
                folded = fusion.fold_batch_norm(module)
            report = int8.quantize_matmuls(module)
            fused_relu, fused_add = fusion.fuse_conv_epilogues(module) if fusing else (0, 0)
        except Exception as error:  # a graph shape the rewrites did not expect is a kubeopt bug
            raise BuildFailed(f"int8 rewrite failed ({first_line(error)}); set torchCompile.convEpilogueFusion: "
                              "false, or use fp16") from error
        if report.linears + report.conv1x1 == 0:
            raise InvalidSpec(f"target {context.target.name}: precision int8 found no linear layer or 1x1 "
                              "convolution with sizes that are multiples of 8 to run in int8; use fp16 for this model")
        log.info("int8: %s", report.as_dict())
        fused = fusion.FusionReport(folded, fused_relu, fused_add).as_dict() if fusing else None
        return fused, report.as_dict()

    def _to_fp8(self, torch: Any, module: Any, context: BuildContext) -> int:
        """Linear layers to float8 (after the bf16 cast, which would otherwise upcast the float8 weights)."""
        if not isinstance(module, torch.fx.GraphModule):
            raise InvalidSpec(f"target {context.target.name}: precision fp8 needs model.format torch-export "
                              "(the rewrite works on the exported graph); TorchScript models can use fp16 or bf16")
        replaced = float8.quantize_linears(module)
        if replaced == 0:
            raise InvalidSpec(f"target {context.target.name}: precision fp8 found no linear layer with sizes that "
                              "are multiples of 16 to run in float8; use bf16 for this model")
        log.info("fp8: %d linear layers in float8", replaced)
        return replaced

    def _quantize(self, torch: Any, module: Any, context: BuildContext, names: list[str]) -> tuple[Any, Any]:
        assert context.spec.calibration is not None
        example = tuple(torch.from_numpy(context.source.example[n]) for n in names)
        settings = context.spec.calibration
        return calibration.quantize_torch_x86(module, example, context.calibration, settings, names,
                                              calibrator(Tool.PT2E_X86, self.name, settings))

    def _load_cache(self, torch: Any, context: BuildContext) -> bool:
        if context.previous_artifact is None or not (context.previous_artifact / CACHE_FILE).exists():
            return False
        try:
            torch.compiler.load_cache_artifacts((context.previous_artifact / CACHE_FILE).read_bytes())
        except Exception as error:  # a cache from another torch version: compile from scratch
            log.warning("compile cache not usable (%s); compiling from scratch", error)
            return False
        return True

    def _warm(self, runner: TorchRunner, context: BuildContext) -> float:
        """Compile by calling once per benchmark batch size; return the seconds it took."""
        started = time.perf_counter()
        for batch in context.spec.benchmark.batch_sizes:
            feeds = {n: np.repeat(a[:1], batch, axis=0) for n, a in context.source.example.items()}
            try:
                runner.run(feeds)
            except Exception as error:
                text = first_line(error)
                if is_unsupported_by_dynamo(runner.torch, error):
                    raise UnsupportedOp(f"torch.compile: {text}") from error
                raise BuildFailed(f"torch.compile failed at batch {batch}: {type(error).__name__}: {text}") from error
        runner.synchronize()
        return time.perf_counter() - started

    def _save_cache(self, torch: Any, context: BuildContext) -> None:
        """Store the compiler's cache beside the model, for the next run of this target."""
        try:
            cache = torch.compiler.save_cache_artifacts()
            if cache is not None:
                (context.artifact_dir / CACHE_FILE).write_bytes(cache[0])
        except Exception as error:
            log.warning("could not save the compile cache: %s", error)

    def _save(self, torch: Any, module: Any, context: BuildContext, names: list[str],
              dtype: Any) -> tuple[str, set[str]]:
        """Store the model as a torch.export program (model.pt2; TorchScript: model.ts); return the
        file's name and the namespaces of the operators the program holds."""
        example = []
        for name in names:
            tensor = torch.from_numpy(context.source.example[name]).to(context.device)
            example.append(tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor)
        try:
            # A batch declared -1 stays dynamic in the published program (AUTO: as far as the graph allows).
            dynamic = tuple({0: torch.export.Dim.AUTO} if spec.shape[0] == -1 else None
                            for spec in context.spec.model.inputs)
            program = torch.export.export(module, tuple(example), dynamic_shapes=dynamic)
            torch.export.save(program, str(context.artifact_dir / "model.pt2"))
        except Exception as error:
            if isinstance(module, torch.jit.ScriptModule):
                torch.jit.save(module, str(context.artifact_dir / "model.ts"))
                return "model.ts", set()
            raise BuildFailed(f"could not save the optimized model: {first_line(error)}") from error
        return "model.pt2", {node.target.namespace for node in program.graph.nodes
                             if isinstance(node.target, torch._ops.OpOverload)}
