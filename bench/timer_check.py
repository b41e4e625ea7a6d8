"""Does the worker's timer agree with a wall clock? One check per runner that can run on this card.

For each runner it times the same prepared step three ways, each over many iterations:

* ``timer``: kubeopt's timer (``benchmark.timer_for``): CUDA events on the stream the runner
  names (``Runner.work_runs_on``), or the wall clock for synchronous runners;
* ``oldTimer``: the timer before the runner protocol named a stream: events on the current
  stream, whatever stream the runner used;
* ``wall``: ``perf_counter`` around the step with a device-wide ``torch.cuda.synchronize``
  before and after (per iteration, so it includes launch overhead and the synchronize), and
  ``wallPipelined``: the wall clock of all iterations back to back, divided by their number.

A timer that cannot lie stays within a few percent of ``wallPipelined`` (and at or below
``wall``); the side-stream runner (TensorRT's pattern, plain torch here) shows what the old
timer did to it. TensorRT and TF-TRT are not installed on this card's image; their runners
name their stream (TensorRT) or synchronize through TensorFlow (TF-TRT), which the unit tests check.

    python3 bench/timer_check.py --out bench/results/h200_timer_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kubeopt.worker.backends.torch_compile.runner import TorchRunner
from kubeopt.worker.benchmark import timer_for
from kubeopt.worker.device import describe_device
from kubeopt.worker.runners import Feeds, OnStream, WorkPlace

Step = Callable[[], object]


class SideStreamMatmuls:
    """Pure GPU work on a stream of its own: twenty 4096x4096 fp32 products, almost no host time."""

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.a = torch.randn(4096, 4096, device="cuda")

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return []

    def prepare(self, feeds: Feeds) -> Step:
        def step() -> object:
            with torch.cuda.stream(self.stream):
                out = self.a
                for _ in range(20):
                    out = out @ self.a
            return out

        return step

    def synchronize(self) -> None:
        self.stream.synchronize()

    def work_runs_on(self) -> WorkPlace:
        return OnStream(self.stream)


class SideStreamRunner:
    """A ResNet-50 run under a stream of its own, returning before the work ran (TensorRT's pattern)."""

    def __init__(self, module: Any, input_name: str) -> None:
        self.inner = TorchRunner(module, [input_name], "cuda")
        self.stream = torch.cuda.Stream()

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return self.inner.run(feeds)

    def prepare(self, feeds: Feeds) -> Step:
        inner = self.inner.prepare(feeds)
        torch.cuda.synchronize()
        stream = self.stream

        def step() -> object:
            with torch.cuda.stream(stream):
                return inner()

        return step

    def synchronize(self) -> None:
        self.stream.synchronize()

    def work_runs_on(self) -> WorkPlace:
        return OnStream(self.stream)


def current_stream_timer() -> Callable[[Step], float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(step: Step) -> float:
        start.record()
        step()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def wall(step: Step) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) * 1000.0


def wall_pipelined(step: Step, iterations: int) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(iterations):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) * 1000.0 / iterations


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.median(values)), 4), "mean": round(float(np.mean(values)), 4),
            "p90": round(float(np.percentile(values, 90)), 4)}


def check(name: str, runner: Any, feeds: Feeds, iterations: int, warmup: int) -> dict[str, Any]:
    step = runner.prepare(feeds)
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    timer, old = timer_for(runner), current_stream_timer()
    # Interleaved, so a drift of clocks or temperature touches every method alike; the
    # pipelined wall clock before and after the rest, averaged.
    pipelined = [wall_pipelined(step, iterations)]
    samples: dict[str, list[float]] = {"timer": [], "oldTimer": [], "wall": []}
    for _ in range(iterations):
        samples["timer"].append(timer(step))
        samples["oldTimer"].append(old(step))
        samples["wall"].append(wall(step))
    pipelined.append(wall_pipelined(step, iterations))
    figures: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    figures["wallPipelined"] = round(float(np.mean(pipelined)), 4)
    place = runner.work_runs_on()
    current = isinstance(place, OnStream) and place.stream == torch.cuda.current_stream()
    figures["workRunsOn"] = "current stream" if current else "side stream" if isinstance(place, OnStream) \
        else "synchronous"
    figures["timerOverWallPipelined"] = round(figures["timer"]["mean"] / figures["wallPipelined"], 3)
    figures["oldTimerOverWallPipelined"] = round(figures["oldTimer"]["mean"] / figures["wallPipelined"], 3)
    print(f"{name:28s} timer {figures['timer']['p50']:9.3f} ms  old {figures['oldTimer']['p50']:9.3f} ms  "
          f"wall {figures['wall']['p50']:9.3f} ms  pipelined {figures['wallPipelined']:9.3f} ms  "
          f"timer/pipelined {figures['timerOverWallPipelined']:.3f}  old/pipelined "
          f"{figures['oldTimerOverWallPipelined']:.3f}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval().cuda()
    half = torchvision.models.resnet50().eval().cuda().half().to(memory_format=torch.channels_last)
    feeds = {"images": np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype(np.float32)}
    runners: dict[str, Any] = {
        "torch-eager-fp32": TorchRunner(model, ["images"], "cuda"),
        "side-stream-eager-fp32": SideStreamRunner(model, "images"),
        "side-stream-matmuls": SideStreamMatmuls(),
        "torch-compile-fp16-cl": TorchRunner(torch.compile(half), ["images"], "cuda", torch.float16, True),
        "torch-compile-fp16-cl-ro": TorchRunner(torch.compile(half, mode="reduce-overhead"), ["images"], "cuda",
                                                torch.float16, True),
    }
    results = {}
    for name, runner in runners.items():
        runner.run(feeds)  # compile, for the compiled ones
        results[name] = check(name, runner, feeds, args.iterations, args.warmup)
    document = {"model": "resnet50 (random weights)", "batch": args.batch, "iterations": args.iterations,
                "warmup": args.warmup, "device": describe_device("cuda"), "torch": torch.__version__,
                "runners": results,
                "notTimedHere": {"tensorrt": "TensorRT is not installed on this card's image",
                                 "tf-trt": "TensorFlow with TensorRT is not installed on this card's image",
                                 "onnxruntime": "synchronous (session runs return when done); CPU-only here"}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
