"""ResNet-50 at one batch size on the GPU: what beats torch.compile FP16 channels-last reduce-overhead?

An exploration, all variants side by side in one process on one card, before any of them goes
into the worker: cuDNN fused epilogues (``kubeopt.worker.backends.torch_compile.fusion``) in eager mode, under a
hand-captured CUDA graph and under torch.compile; AOTInductor packages (compile seconds, load
seconds, throughput with and without a CUDA graph); and cuDNN's exhaustive algorithm search.
Every variant's relative error is taken against the eager FP32 output on the same input.
On the H100 with torch 2.11 the AOTInductor packages compiled but ``aoti_load_package`` crashed the
process (segmentation fault), so run them last or leave them out with ``--only``.

    python3 bench/resnet50_explore.py --batch 128 --out $OUT/explore.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kubeopt.worker.backends.torch_compile import fusion


def median_ms(step: Callable[[], Any], warmup: int = 20, repeats: int = 100) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graphed(step: Callable[[], Any]) -> Callable[[], Any]:
    """Capture one call of ``step`` (fixed input buffer) in a CUDA graph and return its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = step()
    holder = {"output": output}

    def replay() -> Any:
        graph.replay()
        return holder["output"]

    return replay


def exported(batch: int) -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval().cuda()
    example = (torch.randn(batch, 3, 224, 224, device="cuda"),)
    return torch.export.export(model, example)


def half_cl(module: Any) -> Any:
    return module.to(torch.float16).to(memory_format=torch.channels_last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    batch = args.batch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    program = exported(batch)
    x32 = torch.randn(batch, 3, 224, 224, device="cuda")
    x16 = x32.half().contiguous(memory_format=torch.channels_last)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "cudnn": torch.backends.cudnn.version(), "batch": batch, "variants": {}}
    reference: dict[str, torch.Tensor] = {}

    def record(name: str, build: Callable[[], Callable[[], Any]], x: torch.Tensor) -> None:
        if args.only and name not in args.only.split(","):
            return
        entry: dict[str, Any] = {}
        try:
            started = time.perf_counter()
            step = build()
            with torch.inference_mode():
                output = step().float()
            torch.cuda.synchronize()
            entry["build_s"] = round(time.perf_counter() - started, 2)
            if "ref" not in reference:
                reference["ref"] = output.clone()
            ref = reference["ref"]
            entry["rel_err"] = float((output - ref).norm() / ref.norm())
            with torch.inference_mode():
                ms = median_ms(step)
            entry["ms"] = round(ms, 3)
            entry["img_s"] = round(batch / ms * 1000, 1)
        except Exception as error:
            entry["error"] = f"{type(error).__name__}: {str(error)[:400]}"
            traceback.print_exc()
        results["variants"][name] = entry
        args.out.write_text(json.dumps(results, indent=2))
        print(name, entry, flush=True)

    def eager_fp32() -> Callable[[], Any]:
        torch.backends.cudnn.benchmark = False
        module = program.module()
        return lambda: module(x32)

    record("eager-fp32", eager_fp32, x32)
    torch.backends.cudnn.benchmark = True

    def compiled(fuse: bool, mode: str | None, backend: str = "inductor") -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            torch._dynamo.reset()
            module = half_cl(program.module())
            if fuse:
                results.setdefault("fusion", fusion.optimize_conv_graph(module).as_dict())
            fn = torch.compile(module, mode=mode, backend=backend) if backend != "eager" else module
            with torch.inference_mode():
                if mode is None and backend == "eager":
                    return lambda: fn(x16)
                fn(x16)
                fn(x16)
            return lambda: fn(x16)
        return build

    def eager_graphed(fuse: bool) -> Callable[[], Any]:
        module = half_cl(program.module())
        if fuse:
            fusion.optimize_conv_graph(module)
        with torch.inference_mode():
            return graphed(lambda: module(x16))

    record("compile-fp16-cl-ro", compiled(False, "reduce-overhead"), x16)
    record("fused-eager-fp16-cl", compiled(True, None, "eager"), x16)
    record("fused-eager-fp16-cl-graph", lambda: eager_graphed(True), x16)
    record("eager-fp16-cl-graph", lambda: eager_graphed(False), x16)
    record("fused-compile-ro", compiled(True, "reduce-overhead"), x16)
    record("fused-compile-cudagraphs", compiled(True, None, "cudagraphs"), x16)

    def aoti(fuse: bool) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            module = half_cl(program.module())
            if fuse:
                fusion.optimize_conv_graph(module)
            started = time.perf_counter()
            ep = torch.export.export(module, (x16,))
            path = torch._inductor.aoti_compile_and_package(
                ep, package_path=str(Path(tempfile.mkdtemp()) / "model.pt2"))
            compile_s = time.perf_counter() - started
            started = time.perf_counter()
            loaded = torch._inductor.aoti_load_package(path)
            with torch.inference_mode():
                loaded(x16)
            torch.cuda.synchronize()
            load_s = time.perf_counter() - started
            name = "aoti-fused" if fuse else "aoti"
            results.setdefault("aoti", {})[name] = {"compile_s": round(compile_s, 2), "load_s": round(load_s, 2),
                                                    "package_mb": round(Path(path).stat().st_size / 2**20, 1)}
            with torch.inference_mode():
                record(f"{name}-graph", lambda: graphed(lambda: loaded(x16)), x16)
            return lambda: loaded(x16)
        return build

    record("aoti", aoti(False), x16)
    record("aoti-fused", aoti(True), x16)
    torch.backends.cudnn.benchmark_limit = 0  # every cuDNN algorithm, not the first ten

    def exhaustive() -> Callable[[], Any]:
        torch._dynamo.reset()
        return compiled(False, "reduce-overhead")()

    record("compile-fp16-cl-ro-allalgos", exhaustive, x16)
    record("fused-compile-ro-allalgos", compiled(True, "reduce-overhead"), x16)
    base = results["variants"].get("eager-fp32", {}).get("img_s")
    print(f"\n{results['device']} torch {results['torch']} cudnn {results['cudnn']} batch {batch}")
    for name, entry in results["variants"].items():
        ratio = f"{entry['img_s'] / base:5.2f}x" if base and "img_s" in entry else "  -  "
        print(f"{name:32s} {entry.get('img_s', entry.get('error', ''))!s:>10.60} {ratio} "
              f"err {entry.get('rel_err', float('nan')):.1e} build {entry.get('build_s', '-')}")
    print(json.dumps({k: results.get(k) for k in ("fusion", "aoti")}))


if __name__ == "__main__":
    main()
