"""Compile-cache reuse, measured through `kubeopt run` as a target Job runs it.

The same torch-compile target runs twice, each time in a new process with empty local
Inductor and Triton caches (as a fresh pod has). The first run stores the compiler's cache
artifacts with the published artifact; the second finds them under the output URI, loads
them before compiling, and should compile in at most 25% of the first run's time.

    python3 bench/compile_cache.py resnet50 --target fp16-cl-ro --batches 1,32,128 --out result.json

``--variants profile,threads1`` adds warm runs that look for where the second run's seconds go (a
cProfile of the whole run, whose top functions are written next to the result; no compile worker
pool), and ``--bytecode-cache DIR`` gives every run site-packages compiled to bytecode, as an image
built by pip has them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench import prepare

ROOT = Path(__file__).resolve().parents[1]


# Extra warm-cache runs that look for where the second run's seconds go: name -> (environment, profiled).
VARIANTS: dict[str, tuple[dict[str, str], bool]] = {
    "profile": ({}, True),  # cProfile of the whole run; its top functions go next to the result
    "threads1": ({"TORCHINDUCTOR_COMPILE_THREADS": "1"}, False),  # no compile worker pool
}


def compile_site_packages(prefix: Path) -> float:
    """Compile torch's site-packages to bytecode under ``prefix`` (PYTHONPYCACHEPREFIX), as pip does
    when it installs into an image. A read-only environment without .pyc files (the GPU machine's)
    recompiles every module from source in each new process, inside the measured compile time."""
    import torch

    started = time.perf_counter()
    site = Path(torch.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(site)],
                   env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}, capture_output=True, timeout=400)
    return time.perf_counter() - started


def run_once(spec_file: Path, target: str, work: Path, label: str, extra_env: dict[str, str] | None = None,
             profile: Path | None = None) -> dict[str, object]:
    paths = [str(ROOT / "operator"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths),
           "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{label}"),
           "TRITON_CACHE_DIR": str(work / f"triton-{label}"), **(extra_env or {})}
    termination = work / f"termination-{label}.json"
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    process = subprocess.run([sys.executable, *profiler, "-m", "kubeopt.cli", "run", str(spec_file), "--target",
                              target, "--device", "cuda", "--termination-log", str(termination)],
                             env=env, capture_output=True, text=True, timeout=550)
    if process.returncode != 0:
        print(process.stderr[-3000:])
    summary = json.loads(termination.read_text())
    entry = summary["targets"][0]
    compile_json = work / "out" / target / "compile.json"
    phases = json.loads(compile_json.read_text()).get("compileSeconds") if compile_json.exists() else None
    return {"exit_code": process.returncode, "compile_seconds": entry.get("compile_seconds"), "phases": phases,
            "cache_hit": entry.get("cache_hit"), "throughput": entry.get("throughput"),
            "speedup": entry.get("speedup")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=["resnet50", "mobilenet_v2", "bert-base"])
    parser.add_argument("--target", default="fp16-cl-ro")
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[128])
    parser.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=[],
                        help=f"extra warm-cache runs: {', '.join(VARIANTS)}")
    parser.add_argument("--bytecode-cache", type=Path, default=None,
                        help="compile site-packages to bytecode here first and give every run PYTHONPYCACHEPREFIX")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    bytecode_seconds = None
    every_run: dict[str, str] = {}  # environment all runs share
    if args.bytecode_cache:
        bytecode_seconds = round(compile_site_packages(args.bytecode_cache), 1)
        every_run["PYTHONPYCACHEPREFIX"] = str(args.bytecode_cache)
    workload = prepare(args.model, [args.target], args.batches, 50, "kubeopt-cache-")
    work = workload.work
    spec_file = work / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(workload.resource))
    first = run_once(spec_file, args.target, work, "first", every_run)
    second = run_once(spec_file, args.target, work, "second", every_run)
    ratio = (second["compile_seconds"] or 0) / (first["compile_seconds"] or 1)  # type: ignore[operator]
    result = {"model": args.model, "target": args.target, "batches": args.batches, "first": first,
              "second": second, "second_over_first": ratio,
              "bytecode_cache": bool(args.bytecode_cache), "bytecode_compile_seconds": bytecode_seconds}
    for name in args.variants:
        extra_env, profiled = VARIANTS[name]
        profile = work / f"{name}.prof" if profiled else None
        result[name] = run_once(spec_file, args.target, work, name, {**every_run, **extra_env}, profile)
        if profile is not None and profile.exists():
            top = io.StringIO()
            pstats.Stats(str(profile), stream=top).sort_stats("cumulative").print_stats(60)
            args.out.with_suffix(f".{name}.txt").write_text(top.getvalue())
    args.out.write_text(json.dumps(result, indent=2))
    print(f"compile cache: first {first['compile_seconds']}s, second {second['compile_seconds']}s "
          f"(cache_hit={second['cache_hit']}), ratio {ratio:.2f}\nphases: first {first['phases']}\n"
          f"        second {second['phases']}")
    for name in args.variants:
        print(f"{name}: {result[name]}")


if __name__ == "__main__":
    main()
