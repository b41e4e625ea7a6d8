"""A stand-in for ``kubeopt run`` in the operator load bench: it does no work and succeeds at once.

``bench/operator_load.py`` measures the operator (its watches, indexes, reconciles, status
writes, Events and memory) under many resources, not the worker: with the fake kubelet on,
each target pod runs this script in place of the ``kubeopt`` executable. It reads the target
name and the termination-message path from the worker's own command line, writes a valid
worker summary for that target (encoded by ``kubeopt.api.summary``, as the real worker does,
so the operator parses it on the same path as a real result) and exits 0. The figures and the
artifact are fixed placeholders: nothing here is a measurement of a model.

Two thousand pods each importing pydantic would spend the bench's two cores on the stand-in
rather than on the operator, so the summary of a target name is encoded once and kept in
``$LOAD_WORKER_CACHE`` (a folder); later pods of that target copy it (about 60 ms a pod
instead of 300 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def encoded_summary(target: str) -> str:
    """The termination message of a succeeded ``target``: compact JSON from kubeopt.api.summary."""
    from kubeopt.api.reasons import Reason
    from kubeopt.api.summary import ArtifactRef, Summary, TargetSummary, encode

    result = TargetSummary(
        name=target, phase="Succeeded", reason=Reason.SUCCEEDED, message="load bench stand-in: no work done",
        batch=1, throughput=1000.0, baseline_throughput=500.0, p50_ms=1.0, p99_ms=2.0, speedup=2.0,
        artifact=ArtifactRef(uri=f"s3://load-bench/{target}", sha256="0" * 64, size=1),
    )
    return encode(Summary(status="Succeeded", reason=Reason.SUCCEEDED, message="load bench stand-in",
                          device="cpu", targets=[result], best=target))


def cached_summary(target: str, cache: Path | None) -> str:
    if cache is None:
        return encoded_summary(target)
    path = cache / f"{target}.json"
    if path.exists():
        return path.read_text()
    text = encoded_summary(target)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)  # atomic: a concurrent pod reads a whole summary or none
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="load_worker")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--termination-log", type=Path, required=True)
    args, _ = parser.parse_known_args(argv)
    cache = os.environ.get("LOAD_WORKER_CACHE")
    args.termination_log.write_text(cached_summary(args.target, Path(cache) if cache else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
