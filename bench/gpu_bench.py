"""GPU benchmark through kubeopt's own worker: targets vs eager references, side by side in one process.

For one model and batch sizes it (1) builds the model with random weights and exports it with
torch.export, (2) runs kubeopt targets through ``kubeopt.worker.pipeline.run_optimization`` —
the same code a target Job runs, baseline eager FP32 included — and (3) times eager
references (TF32, FP16 and BF16 channels-last) with the worker's own runner and timer
(CUDA events, warm-up, medians) in the same process, on the same card. It writes one JSON
file with every figure, the card's name and library versions, and prints a table.

    python3 bench/gpu_bench.py resnet50 --batches 128 --targets fp16-cl,fp16-cl-ro --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kubeopt.api.load import parse_resource
from kubeopt.api.spec import Benchmark
from kubeopt.worker import benchmark
from kubeopt.worker.backends.registry import default_registry
from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.data import Dataset
from kubeopt.worker.device import describe_device, library_versions
from kubeopt.worker.pipeline import RunSettings, run_optimization

FREEZE = {"freezing": True}
# name -> (precision, torchCompile options)
TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp32": ("fp32", {}),
    "fp16-cl": ("fp16", {"channelsLast": True}),
    "bf16-cl": ("bf16", {"channelsLast": True}),
    "fp16-cl-ro": ("fp16", {"channelsLast": True, "mode": "reduce-overhead"}),
    # cuDNN's heuristics instead of its per-process algorithm search
    "fp16-cl-ro-nobench": ("fp16", {"channelsLast": True, "mode": "reduce-overhead", "cudnnBenchmark": False}),
    "bf16-cl-ro": ("bf16", {"channelsLast": True, "mode": "reduce-overhead"}),
    "fp16-cl-ma": ("fp16", {"channelsLast": True, "mode": "max-autotune"}),
    "fp16-cl-frz": ("fp16", {"channelsLast": True, "options": FREEZE}),
    "fp16-cl-ro-frz": ("fp16", {"channelsLast": True, "mode": "reduce-overhead", "options": FREEZE}),
    "bf16-cl-ro-frz": ("bf16", {"channelsLast": True, "mode": "reduce-overhead", "options": FREEZE}),
    "fp16-cl-ma-frz": ("fp16", {"channelsLast": True, "mode": "max-autotune", "options": FREEZE}),
    "fp16-cl-ro-mm": ("fp16", {"channelsLast": True, "mode": "reduce-overhead", "options": {"conv_1x1_as_mm": True}}),
    "fp16-cl-ro-mm-frz": ("fp16", {"channelsLast": True, "mode": "reduce-overhead",
                                   "options": {"conv_1x1_as_mm": True, "freezing": True}}),
    # The same without cuDNN fused conv epilogues (on by default since they were measured).
    "fp32-plain": ("fp32", {"convEpilogueFusion": False}),
    "fp16-cl-plain": ("fp16", {"channelsLast": True, "convEpilogueFusion": False}),
    "fp16-cl-ro-plain": ("fp16", {"channelsLast": True, "mode": "reduce-overhead", "convEpilogueFusion": False}),
    "bf16-cl-ro-plain": ("bf16", {"channelsLast": True, "mode": "reduce-overhead", "convEpilogueFusion": False}),
    "fp16-cl-manc": ("fp16", {"channelsLast": True, "mode": "max-autotune-no-cudagraphs"}),
    "int8": ("int8", {}),
    "int8-ro": ("int8", {"mode": "reduce-overhead"}),
    "int8-cl-ro": ("int8", {"channelsLast": True, "mode": "reduce-overhead"}),
    "int8-ma": ("int8", {"mode": "max-autotune"}),
    "int8-cl-ma": ("int8", {"channelsLast": True, "mode": "max-autotune"}),
    "fp8": ("fp8", {}),
    "fp8-ro": ("fp8", {"mode": "reduce-overhead"}),
    "fp16": ("fp16", {}),
    "bf16": ("bf16", {}),
    "fp16-ro": ("fp16", {"mode": "reduce-overhead"}),
    "bf16-ro": ("bf16", {"mode": "reduce-overhead"}),
    "fp16-ro-frz": ("fp16", {"mode": "reduce-overhead", "options": FREEZE}),
}


class BertLikeEncoder(torch.nn.Module):
    """A BERT-base-sized encoder (12 layers, hidden 768, 12 heads, FFN 3072), random weights."""

    def __init__(self, vocab: int = 30522, hidden: int = 768, layers: int = 12, heads: int = 12,
                 seq: int = 128) -> None:
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, hidden)
        self.positions = torch.nn.Parameter(torch.randn(1, seq, hidden) * 0.02)
        self.norm = torch.nn.LayerNorm(hidden)
        layer = torch.nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=False)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pooler = torch.nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.tokens(input_ids) + self.positions)
        return torch.tanh(self.pooler(self.encoder(hidden)[:, 0]))


def build_model(name: str) -> tuple[torch.nn.Module, dict[str, Any], np.ndarray]:
    """The model, its input spec, and validation samples (random, seeded)."""
    rng = np.random.default_rng(0)
    if name == "bert-base":
        # The exported graph must hold plain attention ops, not the eager fast-path kernel
        # (torch 2.11 on CUDA rejected the fast path's views when the program ran).
        torch.backends.mha.set_fastpath_enabled(False)
        model: torch.nn.Module = BertLikeEncoder()
        return model, {"name": "input_ids", "shape": [-1, 128], "dtype": "int64"}, \
            rng.integers(0, 30522, size=(256, 128)).astype(np.int64)
    import torchvision

    model = {"resnet50": torchvision.models.resnet50, "mobilenet_v2": torchvision.models.mobilenet_v2}[name]()
    return model, {"name": "images", "shape": [-1, 3, 224, 224]}, \
        rng.standard_normal((256, 3, 224, 224)).astype(np.float32)


def export(model: torch.nn.Module, samples: np.ndarray, path: Path) -> None:
    """Export on the device the model will run on: attention kernels return different strides
    on CUDA than on the CPU, and the exported graph's views depend on them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.eval().to(device)
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.from_numpy(samples[:2]).to(device),)
    program = torch.export.export(model, example, dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    model.cpu()


def eager_references(model: torch.nn.Module, input_name: str, data: Dataset, settings: Benchmark,
                     vision: bool) -> dict[str, dict[int, Any]]:
    """Eager TF32, FP16 and BF16 (channels-last for CNNs), timed like the worker times targets."""
    refs: dict[str, dict[int, Any]] = {}
    torch.backends.cudnn.benchmark = False  # eager as users run it: the framework's defaults
    model = model.cuda().eval()
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    refs["eager-tf32"] = benchmark.time_runner(TorchRunner(model, [input_name], "cuda"), data, settings)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    layout = torch.channels_last if vision else torch.contiguous_format
    for label, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        typed = model.to(dtype).to(memory_format=layout)
        runner = TorchRunner(typed, [input_name], "cuda", dtype, channels_last=vision)
        refs[f"eager-{label}{'-cl' if vision else ''}"] = benchmark.time_runner(runner, data, settings)
        model = model.float()
    return refs


@dataclass(frozen=True)
class Workload:
    """A model built, exported and described as a ModelOptimization, in a fresh work folder."""

    work: Path
    model: torch.nn.Module
    input_spec: dict[str, Any]
    samples: np.ndarray
    resource: dict[str, Any]


def prepare(name: str, targets: list[str], batches: list[int], iterations: int, prefix: str) -> Workload:
    """Build ``name`` with random weights, export it, save its validation samples and write the spec."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    model, input_spec, samples = build_model(name)
    export(model, samples, work / "model.pt2")
    np.savez(work / "validation.npz", **{input_spec["name"]: samples})
    resource = spec_for(name, work / "model.pt2", input_spec, work / "validation.npz", work / "out", targets,
                        batches, iterations)
    return Workload(work, model, input_spec, samples, resource)


def spec_for(name: str, model_path: Path, input_spec: dict[str, Any], validation: Path, out: Path,
             targets: list[str], batches: list[int], iterations: int) -> dict[str, Any]:
    vision = name != "bert-base"
    entries = []
    for target in targets:
        precision, options = TARGETS[target]
        if not vision:
            options = {k: v for k, v in options.items() if k != "channelsLast"}
        entries.append({"name": target, "backend": "torch-compile", "precision": precision,
                        "torchCompile": options})
    calibration = {"uri": str(validation), "samples": 64, "batchSize": 16} if any(
        TARGETS[t][0] == "int8" for t in targets) else None
    spec: dict[str, Any] = {
        "model": {"uri": str(model_path), "format": "torch-export", "inputs": [input_spec]},
        "targets": entries,
        "validation": {"uri": str(validation), "samples": 128},
        "benchmark": {"batchSizes": batches, "warmup": 20, "iterations": iterations},
        "selection": {"objective": "throughput", "batchSize": max(batches)},
        "output": {"uri": str(out)},
        "resources": {"gpu": 1},
    }
    if calibration:
        spec["calibration"] = calibration
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": name},
            "spec": spec}


def timing_row(timing: Any) -> dict[str, float]:
    return {"throughput": timing.throughput, "p50_ms": timing.p50_ms, "p90_ms": timing.p90_ms,
            "p99_ms": timing.p99_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=["resnet50", "mobilenet_v2", "bert-base"])
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[128])
    parser.add_argument("--targets", type=lambda s: s.split(","), default=["fp16-cl", "fp16-cl-ro"])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--no-refs", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    workload = prepare(args.model, args.targets, args.batches, args.iterations, "kubeopt-bench-")
    work, model, input_spec, samples = workload.work, workload.model, workload.input_spec, workload.samples
    resource = parse_resource(workload.resource)
    started = time.perf_counter()
    outcome = run_optimization(resource, RunSettings(device="cuda", workspace=work / "ws",
                                                     progress=lambda line: print(line, flush=True)),
                               default_registry())
    print(f"kubeopt run: {time.perf_counter() - started:.0f}s", flush=True)
    settings = Benchmark(batch_sizes=args.batches, warmup=20, iterations=args.iterations)
    data = Dataset({input_spec["name"]: samples}, None, "random", "random")
    refs = {} if args.no_refs else eager_references(model, input_spec["name"], data, settings,
                                                   args.model != "bert-base")
    baseline = next((r.baseline_timings for r in outcome.results if r.baseline_timings), {})
    result: dict[str, Any] = {
        "model": args.model, "device": describe_device("cuda"), "versions": library_versions(),
        "batches": args.batches, "best": outcome.best.target.name if outcome.best else None,
        "baseline_eager_fp32": {str(b): timing_row(t) for b, t in baseline.items()},
        "references": {name: {str(b): timing_row(t) for b, t in timings.items()} for name, timings in refs.items()},
        "targets": {},
    }
    for r in outcome.results:
        result["targets"][r.target.name] = {
            "precision": r.target.precision.value, "options": r.details, "status": r.reason.value,
            "message": r.message, "compile_seconds": r.compile_seconds,
            "relative_error": r.accuracy.relative_error if r.accuracy else None,
            "within_budget": r.verdict.within_budget if r.verdict else None,
            "timings": {str(b): {**timing_row(t), "speedup_vs_eager_fp32": r.speedup(b)} for b, t in r.timings.items()},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print_table(result)


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['model']} on {result['device']}; best: {result['best']}")
    for batch in result["batches"]:
        key = str(batch)
        base = result["baseline_eager_fp32"].get(key, {}).get("throughput")
        print(f"batch {batch}: eager fp32 {base or 0:,.0f}/s")
        for name, timings in result["references"].items():
            value = timings[key]["throughput"]
            print(f"  {name:18s} {value:>10,.0f}/s  {value / base if base else 0:5.2f}x")
        for name, target in result["targets"].items():
            if key not in target["timings"]:
                print(f"  {name:18s} {target['status']}: {target['message'][:120]}")
                continue
            t = target["timings"][key]
            print(f"  {name:18s} {t['throughput']:>10,.0f}/s  {t['speedup_vs_eager_fp32'] or 0:5.2f}x  "
                  f"p50 {t['p50_ms']:.3f} ms  rel.err {target['relative_error']:.2e}  "
                  f"compile {target['compile_seconds']:.0f}s")


if __name__ == "__main__":
    main()
