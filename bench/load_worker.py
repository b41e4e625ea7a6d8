"""A stand-in for ``kubeopt run`` in the operator load bench: it does no work and succeeds at once.

``bench/operator_load.py`` measures the operator (its watches, indexes, reconciles, status
writes, Events and memory) under many resources, not the worker: with the fake kubelet on,
each target pod runs this script in place of the ``kubeopt`` executable. It reads the target
name and the termination-message path from the worker's own command line, writes a valid
worker summary for that target (encoded by ``kubeopt.api.summary``, as the real worker does,
so the operator parses it on the same path as a real result) and exits 0. The figures are
fixed placeholders: nothing here is a measurement of a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubeopt.api.reasons import Reason
from kubeopt.api.summary import ArtifactRef, Summary, TargetSummary, encode


def summary_for(target: str, output_uri: str) -> Summary:
    """A succeeded one-target summary with placeholder figures and artifact."""
    result = TargetSummary(
        name=target, phase="Succeeded", reason=Reason.SUCCEEDED, message="load bench stand-in: no work done",
        batch=1, throughput=1000.0, baseline_throughput=500.0, p50_ms=1.0, p99_ms=2.0, speedup=2.0,
        artifact=ArtifactRef(uri=f"{output_uri.rstrip('/')}/{target}/load-bench", sha256="0" * 64, size=1),
    )
    return Summary(status="Succeeded", reason=Reason.SUCCEEDED, message="load bench stand-in",
                   device="cpu", targets=[result], best=target)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="load_worker")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--spec-json", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--termination-log", type=Path, required=True)
    args, _ = parser.parse_known_args(argv)
    output = json.loads(args.spec_json).get("spec", {}).get("output", {}).get("uri", "s3://load-bench")
    args.termination_log.write_text(encode(summary_for(args.target, output)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
