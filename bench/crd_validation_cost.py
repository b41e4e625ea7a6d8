"""The API server's CPU per ModelOptimization create and per status PATCH, for variants of the CRD's
CEL rules, on one e2e control plane (no operator, no admission policies).

Variants: ``shipped`` (crds/ as generated), ``guarded`` (every rule outside a list item made a
transition rule, ``(oldSelf.hasValue() && oldSelf.value() == self) || (rule)`` with
``optionalOldSelf``, so an unchanged value skips it: the idea being that a status PATCH, which
changes no spec, would skip the spec's rules) and ``none`` (no rules: the floor). Each round
applies each variant in turn, creates N resources in a fresh namespace from 8 threads and
PATCHes each one's status once; CPU is the API server's user+system time over each phase.

    KUBEOPT_E2E_BIN_DIR=... PYTHONPATH=$PWD/operator .venv/bin/python bench/crd_validation_cost.py \\
        --resources 400 --rounds 2 --out bench/results/crd_validation_cost.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "e2e"))

import operator_load as load  # noqa: E402
from kubeopt_e2e import ControlPlane, bin_dir  # noqa: E402
from kubeopt_e2e.clients import Kubectl  # noqa: E402
from kubernetes import client, config  # noqa: E402

CRD_NAME = "modeloptimizations.kubeopt.io"
STATUS = {"observedGeneration": 1, "phase": "Pending",
          "conditions": [{"type": kind, "status": "False", "reason": "JobsPending", "message": "2 of 2 targets pending",
                          "lastTransitionTime": "2026-11-30T03:00:00Z", "observedGeneration": 1}
                         for kind in ("Ready", "Reconciling", "Stalled")],
          "targets": [{"name": name, "jobName": f"j-{name}-0123456789", "phase": "Pending"} for name in load.TARGETS]}


def _walk(node: Any, visit: Callable[[dict[str, Any], bool], None], in_items: bool = False) -> None:
    if isinstance(node, dict):
        visit(node, in_items)
        for key, child in node.items():
            _walk(child, visit, in_items or key == "items")
    elif isinstance(node, list):
        for child in node:
            _walk(child, visit, in_items)


def variants(shipped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    guarded, none = copy.deepcopy(shipped), copy.deepcopy(shipped)

    def guard(node: dict[str, Any], in_items: bool) -> None:
        if in_items:  # an atomic list's items cannot be correlated with their old values
            return
        for rule in node.get("x-kubernetes-validations", []):
            rule["rule"] = f"(oldSelf.hasValue() && oldSelf.value() == self) || ({rule['rule']})"
            rule["optionalOldSelf"] = True

    _walk(guarded, guard)
    _walk(none, lambda node, _: node.pop("x-kubernetes-validations", None))
    return {"shipped": shipped, "guarded": guarded, "none": none}


def send(api: client.ApiClient, method: str, path: str, body: Any, content_type: str) -> None:
    method, url, headers, data, _ = api.param_serialize(
        method, path, header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body,
        auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, data, _request_timeout=120).response
    if response.status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {response.status} {response.data[:300]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crd_validation_cost.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kubeopt-crd-cost-"))
    shipped = yaml.safe_load((ROOT / "crds" / f"{CRD_NAME}.yaml").read_text())
    files = {}
    for name, crd in variants(shipped).items():
        files[name] = work / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(crd))
    binaries = Path(os.environ["KUBEOPT_E2E_BIN_DIR"]) if os.environ.get("KUBEOPT_E2E_BIN_DIR") else bin_dir()
    plane = ControlPlane(binaries, work / "control-plane")
    kubeconfig = plane.start()
    rows = []
    try:
        kubectl = Kubectl(kubeconfig)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        server = {"kube-apiserver": plane.pids()["kube-apiserver"]}
        for round_ in range(args.rounds):
            for name, path in files.items():
                kubectl.install_crd(path, CRD_NAME, timeout=90)
                time.sleep(3)  # the API server's handler for the new schema is in place
                namespace = f"r{round_}-{name}"
                kubectl("create", "namespace", namespace)
                base = f"/apis/kubeopt.io/v1alpha1/namespaces/{namespace}/modeloptimizations"

                def create(i: int, base: str = base, namespace: str = namespace) -> None:
                    body = load.resource(f"r-{i:05d}")
                    body["metadata"]["namespace"] = namespace
                    send(api, "POST", base, body, "application/json")

                def patch(i: int, base: str = base) -> None:
                    send(api, "PATCH", f"{base}/r-{i:05d}/status", {"status": STATUS}, "application/merge-patch+json")

                before = load.cpu_seconds(server)["kube-apiserver"]
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(create, range(args.resources)))
                created = load.cpu_seconds(server)["kube-apiserver"]
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(patch, range(args.resources)))
                patched = load.cpu_seconds(server)["kube-apiserver"]
                row = {"variant": name, "round": round_, "resources": args.resources,
                       "create_cpu_ms": round(1000 * (created - before) / args.resources, 2),
                       "status_patch_cpu_ms": round(1000 * (patched - created) / args.resources, 2)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        plane.stop()
    args.out.write_text(json.dumps({"rows": rows, "machine": load.machine()}, indent=1) + "\n")
    print(f"written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
