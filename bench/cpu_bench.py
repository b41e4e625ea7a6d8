"""CPU benchmark through kubeopt's worker: INT8 and FP32 targets vs torch eager FP32, one process.

Models: the digits CNN (trained in seconds, real labels) and ResNet-18 (random weights,
224x224, random images: accuracy is reported as agreement with the FP32 model). Every ratio is
measured side by side in one run on this machine. Writes JSON and prints a table.

    python bench/cpu_bench.py --out bench/results/cpu_2core.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from kubeopt.api.load import parse_resource  # noqa: E402
from kubeopt.worker.backends.registry import default_registry  # noqa: E402
from kubeopt.worker.device import describe_device, library_versions  # noqa: E402
from kubeopt.worker.pipeline import RunSettings, run_optimization  # noqa: E402

TARGETS = [
    {"name": "ort-fp32", "backend": "onnxruntime", "precision": "fp32"},
    {"name": "ort-int8", "backend": "onnxruntime", "precision": "int8",
     "onnxruntime": {"activationType": "uint8", "perChannel": True}},
    {"name": "ort-int8-s8s8", "backend": "onnxruntime", "precision": "int8",
     "onnxruntime": {"activationType": "int8", "perChannel": True}},
    {"name": "compile-fp32", "backend": "torch-compile", "precision": "fp32"},
    {"name": "compile-int8", "backend": "torch-compile", "precision": "int8"},
]


class BasicBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else torch.nn.Sequential(
            torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.down is None else self.down(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + skip)


def resnet18() -> torch.nn.Module:
    """torchvision's ResNet-18 architecture (torchvision itself is not installed here)."""
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(64),
                                     torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
        channels = width
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(512, 1000)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained network has
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def digits_case(work: Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "examples" / "digits" / "make_digits.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.build(work / "digits")
    return {"model": paths["pt2"], "input": {"name": "pixels", "shape": [-1, 1, 8, 8]}, "task": "classification",
            "calibration": paths["calibration"], "validation": paths["validation"], "batches": [1, 64, 256],
            "iterations": 100}


def resnet18_case(work: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    model = resnet18()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((96, 3, 224, 224)).astype(np.float32)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.from_numpy(images[:2]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(work / "resnet18.pt2"))
    np.savez(work / "resnet18-calib.npz", images=images[:64])
    np.savez(work / "resnet18-val.npz", images=images[64:])
    return {"model": work / "resnet18.pt2", "input": {"name": "images", "shape": [-1, 3, 224, 224]},
            "task": "classification", "calibration": work / "resnet18-calib.npz",
            "validation": work / "resnet18-val.npz", "batches": [1, 16], "iterations": 20}


def run_case(name: str, case: dict[str, Any], work: Path) -> dict[str, Any]:
    resource = parse_resource({
        "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": name},
        "spec": {
            "model": {"uri": str(case["model"]), "format": "torch-export", "task": case["task"],
                      "inputs": [case["input"]]},
            "targets": TARGETS,
            "calibration": {"uri": str(case["calibration"]), "samples": 512, "batchSize": 16, "method": "minmax"},
            "validation": {"uri": str(case["validation"]), "budget": {"maxTop1Drop": 0.05, "maxRelativeError": 0.2}},
            "benchmark": {"batchSizes": case["batches"], "warmup": 5, "iterations": case["iterations"]},
            "output": {"uri": str(work / "out" / name)},
            "resources": {"gpu": 0},
        },
    })
    started = time.perf_counter()
    outcome = run_optimization(resource, RunSettings(device="cpu", progress=lambda line: print(line, flush=True)),
                               default_registry())
    baseline = next(r.baseline_timings for r in outcome.results if r.baseline_timings)
    return {
        "seconds": time.perf_counter() - started,
        "best": outcome.best.target.name if outcome.best else None,
        "baseline_eager_fp32": {str(b): t.throughput for b, t in baseline.items()},
        "targets": {r.target.name: {
            "status": r.reason.value, "message": r.message, "compile_seconds": r.compile_seconds,
            "relative_error": r.accuracy.relative_error if r.accuracy else None,
            "top1_agreement": r.accuracy.top1_agreement if r.accuracy else None,
            "accuracy": r.accuracy.accuracy if r.accuracy else None,
            "baseline_accuracy": r.accuracy.baseline_accuracy if r.accuracy else None,
            "throughput": {str(b): t.throughput for b, t in r.timings.items()},
            "speedup_vs_eager_fp32": {str(b): r.speedup(b) for b in r.timings},
        } for r in outcome.results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default="digits,resnet18")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kubeopt-cpu-bench-"))
    builders = {"digits": digits_case, "resnet18": resnet18_case}
    result: dict[str, Any] = {"device": describe_device("cpu"), "versions": library_versions(),
                              "torch_threads": torch.get_num_threads(), "cases": {}}
    for name in args.cases.split(","):
        result["cases"][name] = run_case(name, builders[name](work), work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{result['device']}")
    for name, case in result["cases"].items():
        print(f"{name}: best {case['best']}; torch eager fp32 {case['baseline_eager_fp32']}")
        for target, t in case["targets"].items():
            ratios = {b: round(s, 2) for b, s in t["speedup_vs_eager_fp32"].items() if s}
            print(f"  {target:14s} {t['status']:10s} x eager fp32 {ratios}  rel.err {t['relative_error'] or 0:.2e}  "
                  f"agree {t['top1_agreement']}  acc {t['accuracy']} (base {t['baseline_accuracy']})")


if __name__ == "__main__":
    main()
