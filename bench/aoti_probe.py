"""Does an AOTInductor package of ResNet-50 (FP16, channels-last) load and run on this GPU?

Compiles in one process and loads in a fresh one (as a second target run would), each step timed,
with faulthandler on so that a crash says where. Prints one JSON line per step.

    python3 -X faulthandler bench/aoti_probe.py --out probe.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))


def compile_package(path: Path, batch: int, fuse: bool) -> dict[str, float]:
    import torchvision

    model = torchvision.models.resnet50().eval().cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").half().contiguous(memory_format=torch.channels_last)
    started = time.perf_counter()
    program = torch.export.export(model, (x,))
    if fuse:
        from kubeopt.worker.backends.torch_compile import fusion

        module = program.module()
        fusion.optimize_conv_graph(module)
        program = torch.export.export(module, (x,))
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    return {"export_s": round(export_s, 2), "compile_s": round(time.perf_counter() - started, 2),
            "package_mb": round(path.stat().st_size / 2**20, 1)}


def load_and_run(path: Path, batch: int, fuse: bool) -> dict[str, float]:
    if fuse:
        from kubeopt.worker.backends.torch_compile import fusion

        fusion.register_fake_kernels()
    x = torch.randn(batch, 3, 224, 224, device="cuda").half().contiguous(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    loaded = torch._inductor.aoti_load_package(str(path))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    with torch.inference_mode():
        loaded(x)
    torch.cuda.synchronize()
    first_s = time.perf_counter() - started
    times = []
    with torch.inference_mode():
        for _ in range(10):
            loaded(x)
        for _ in range(50):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            loaded(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    median = sorted(times)[len(times) // 2]
    return {"load_s": round(load_s, 2), "first_run_s": round(first_s, 2), "median_ms": round(median, 3),
            "img_per_s": round(batch / median * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--fuse", action="store_true")
    parser.add_argument("--step", choices=["all", "compile", "load"], default="all")
    parser.add_argument("--package", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.step == "compile":
        print(json.dumps({"compile": compile_package(args.package, args.batch, args.fuse)}), flush=True)
        return
    if args.step == "load":
        print(json.dumps({"load": load_and_run(args.package, args.batch, args.fuse)}), flush=True)
        return
    package = Path(tempfile.mkdtemp()) / "model.pt2"
    result: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                 "batch": args.batch, "fuse": args.fuse}
    for step in ("compile", "load"):
        command = [sys.executable, "-X", "faulthandler", __file__, "--step", step, "--package", str(package),
                   "--batch", str(args.batch)] + (["--fuse"] if args.fuse else [])
        started = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True, timeout=500)
        result[step] = {"exit_code": process.returncode, "wall_s": round(time.perf_counter() - started, 1),
                        "stdout": process.stdout[-2000:], "stderr": process.stderr[-4000:]}
        print(json.dumps({step: result[step]["exit_code"], "stdout": process.stdout[-500:]}), flush=True)
        if process.returncode != 0:
            break
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
