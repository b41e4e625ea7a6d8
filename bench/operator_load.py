"""Operator load bench: N ModelOptimizations against the e2e control plane, timed and weighed.

Starts the e2e control plane (``kubeopt_e2e``: etcd, kube-apiserver, kube-controller-manager
built from source), applies the Helm chart's RBAC and runs ``kubeopt operator`` with a token of
the chart's ServiceAccount and the chart Deployment's environment, as a cluster would. Then it
creates N resources of two targets each (one POST each from a pool of threads, timed on their
own; four parallel ``kubectl apply`` processes took 21 s for 200 on two cores) and reports:

- seconds from the first ``kubectl apply`` to all 2N Jobs, and to settled status: with the
  fake kubelet on, every target Succeeded or Failed and the resource Ready; with it off, every
  target unfinished (Pending, or Running where the operator counts a Job's pending pod as
  running) with the Job the bench saw for it in ``status.targets[].jobName``;
- Jobs per resource and duplicates (Jobs beyond one per target, by owner UID and target label);
- the operator's RSS before the burst (idle), its peak (``/proc/<pid>/status`` every 0.5 s,
  and the kernel's own high-water mark) and once settled;
- reconcile errors (``kubeopt_reconcile_errors_total``) and lost Events (Jobs that exist and
  that no JobCreated Event the API holds names; one Event names every Job of its reconcile),
  and the machine (``nproc``, CPU model, load average);
- what the burst cost until settled: CPU seconds of each process (API server, etcd, controller
  manager, operator, bench) and the API server's requests by verb and resource, all clients'.

With ``--kubelet on`` the fake kubelet runs each pod's worker as ``bench/load_worker.py``,
which writes a valid summary and exits: this measures the operator, not the worker.

    KUBEOPT_E2E_BIN_DIR=... PYTHONPATH=$PWD/operator .venv/bin/python bench/operator_load.py \\
        --resources 1000 --kubelet off --label before

The JSON goes to ``bench/results/operator_load_<N>_<kubelet on|off>_<label>.json``.
``--operator-env KEY=VALUE`` adds to the operator's environment (to try a setting before it
goes in the chart); ``--tracemalloc`` loads ``bench/tracemalloc_site`` into the operator and
writes its largest live allocation sites next to the JSON (``.tracemalloc.txt``) once settled.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))

from kubeopt_e2e import ControlPlane, bin_dir  # noqa: E402
from kubeopt_e2e.clients import Helm, Kubectl  # noqa: E402
from kubeopt_e2e.kubelet import FakeKubelet  # noqa: E402
from kubeopt_e2e.operator import (  # noqa: E402
    E2E_WORKER_ENV,
    OperatorProcess,
    admission_policies,
    service_account_kubeconfig,
)
from kubernetes import client, config  # noqa: E402
from kubernetes.watch.watch import iter_resp_lines  # noqa: E402

CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
RESULTS = ROOT / "bench" / "results"
NAMESPACE = "load"
TARGETS = ("ort-fp32", "ort-int8")
SELECTOR = "app.kubernetes.io/managed-by=kubeopt"
TARGET_LABEL = "kubeopt.io/target"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
RSS_INTERVAL = 0.5
FINISHED = ("Succeeded", "Failed")


def resource(name: str) -> dict[str, Any]:
    """A valid resource with two ONNX Runtime targets, both allowed to run at once."""
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": {"uri": "s3://models/digits/digits_cnn.onnx", "format": "onnx",
                               "task": "classification", "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
                     "targets": [{"name": TARGETS[0], "backend": "onnxruntime", "precision": "fp32"},
                                 {"name": TARGETS[1], "backend": "onnxruntime", "precision": "int8"}],
                     "calibration": {"uri": "s3://models/digits/calibration.npz", "samples": 256,
                                     "method": "minmax"},
                     "benchmark": {"batchSizes": [1, 32], "warmup": 2, "iterations": 10},
                     "output": {"uri": f"s3://artifacts/{NAMESPACE}/{name}"},
                     "resources": {"gpu": 0}, "parallelism": 2}}


# -- what the API server holds, as it changes ----------------------------------------------

def get(api: client.ApiClient, path: str, query: list[tuple[str, str]], accept: str = "application/json",
        timeout: Any = 120) -> Any:
    """A GET whose body is left unread: an urllib3 response, to read as JSON or to stream."""
    method, url, headers, _, _ = api.param_serialize("GET", path, query_params=query, header_params={"Accept": accept},
                                                     auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, _request_timeout=timeout).response
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {response.data[:300]!r}")
    return response


class Watch(threading.Thread):
    """A raw watch (no typed models: decoding 10,000 V1Jobs would load this process more than
    the operator) that hands each object to ``on_object``, resuming where it stopped."""

    def __init__(self, api: client.ApiClient, path: str, on_object: Any, params: dict[str, str] | None = None,
                 accept: str = "application/json") -> None:
        super().__init__(name=f"watch {path}", daemon=True)
        self.api, self.path, self.on_object = api, path, on_object
        self.params, self.accept = dict(params or {}), accept
        self.stop = threading.Event()

    def run(self) -> None:
        version = ""
        while not self.stop.is_set():
            query = [("watch", "true"), ("timeoutSeconds", "300"), ("allowWatchBookmarks", "true"),
                     *self.params.items(), *([("resourceVersion", version)] if version else [])]
            try:
                response = get(self.api, self.path, query, self.accept, timeout=(10, 330))
                for line in iter_resp_lines(response):
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        version = ""  # 410 Gone: start over with the current state (synthetic ADDED)
                        break
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.on_object(event["object"], time.monotonic())
            except Exception as error:  # reconnect, as an informer does
                if not self.stop.is_set():
                    print(f"watch {self.path}: {type(error).__name__}: {error}; reconnecting", file=sys.stderr)
                    time.sleep(1)


class Tracker:
    """Jobs and resources as the watches report them, and when each milestone was reached."""

    def __init__(self, expected: int, kubelet: bool) -> None:
        self.expected, self.kubelet = expected, kubelet
        self.lock = threading.Lock()
        self.jobs: dict[str, tuple[float, str, str]] = {}  # name -> (first seen, owner uid, target)
        self.jobs_by_owner: dict[str, set[str]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.settled: set[str] = set()
        self.all_jobs_at: float | None = None
        self.settled_at: float | None = None

    def on_job(self, meta_object: dict[str, Any], now: float) -> None:
        meta = meta_object["metadata"]
        owner = next((r["uid"] for r in meta.get("ownerReferences") or [] if r.get("kind") == "ModelOptimization"), "")
        with self.lock:
            if meta["name"] in self.jobs:
                return
            self.jobs[meta["name"]] = (now, owner, (meta.get("labels") or {}).get(TARGET_LABEL, ""))
            self.jobs_by_owner.setdefault(owner, set()).add(meta["name"])
            if self.all_jobs_at is None and len(self.jobs) >= self.expected * len(TARGETS):
                self.all_jobs_at = now

    def on_resource(self, body: dict[str, Any], now: float) -> None:
        name = body["metadata"]["name"]
        with self.lock:
            self.resources[name] = {"uid": body["metadata"]["uid"], "generation": body["metadata"].get("generation"),
                                    "status": body.get("status") or {}}
            self._judge(name)
            if self.settled_at is None and len(self.settled) >= self.expected:
                self.settled_at = now

    def _judge(self, name: str) -> None:
        record = self.resources[name]
        status = record["status"]
        targets = status.get("targets") or []
        jobs = self.jobs_by_owner.get(record["uid"], set())
        ok = len(targets) == len(TARGETS) and status.get("observedGeneration") == record["generation"] \
            and all(t.get("jobName") in jobs for t in targets)
        if ok and self.kubelet:
            ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            ok = all(t.get("phase") in FINISHED for t in targets) and ready.get("status") == "True"
        elif ok:
            ok = all(t.get("phase") not in FINISHED for t in targets)
        if ok:
            self.settled.add(name)
        else:
            self.settled.discard(name)

    def rejudge(self) -> None:
        """Judge again every resource (a Job seen after its resource's last change counts now)."""
        with self.lock:
            for name in list(self.resources):
                self._judge(name)
            if self.settled_at is None and len(self.settled) >= self.expected:
                self.settled_at = time.monotonic()

    def job_names(self) -> list[str]:
        with self.lock:
            return list(self.jobs)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            per_target = Counter((owner, target) for _, owner, target in self.jobs.values())
            per_owner = Counter(owner for _, owner, _ in self.jobs.values())
            uids = {r["uid"] for r in self.resources.values()}
            phases = Counter(t.get("phase") for r in self.resources.values() for t in r["status"].get("targets") or [])
            counts = [per_owner.get(uid, 0) for uid in uids]
            return {
                "jobs": len(self.jobs), "resources_seen": len(self.resources), "settled": len(self.settled),
                "duplicates": sum(n - 1 for n in per_target.values() if n > 1),
                "jobs_without_owner": per_owner.get("", 0),
                "jobs_per_resource": {"min": min(counts, default=0), "max": max(counts, default=0),
                                      "mean": round(sum(counts) / len(counts), 3) if counts else 0.0},
                "target_phases": dict(phases),
            }


# -- the operator's memory -------------------------------------------------------------------

def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (the kernel's peak) and RSS's parts (anonymous: the heap; file: mapped
    libraries) of ``pid`` in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0])
    return values


class RssSampler(threading.Thread):
    """The operator's RSS every 0.5 s: the peak, and a timeline (one point every 2 s)."""

    def __init__(self, pid: int, t0: float) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid, self.t0 = pid, t0
        self.peak_kib = 0
        self.timeline: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last = -10.0
        while not self.stop.wait(RSS_INTERVAL):
            try:
                rss = rss_kib(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peak_kib = max(self.peak_kib, rss)
            now = time.monotonic() - self.t0
            if now - last >= 2.0:
                self.timeline.append((round(now, 1), round(rss / 1024, 1)))
                last = now


# -- setup, burst, readings ------------------------------------------------------------------

def chart_env(helm: Helm) -> dict[str, str]:
    """The literal env values of the chart's Deployment (worker images aside: the bench's own)."""
    rendered = helm("template", "kubeopt", str(CHART), "--namespace", "kubeopt-system").stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: str(e["value"]) for e in container.get("env") or []
            if "value" in e and not e["name"].startswith("KUBEOPT_WORKER_IMAGE")}


def create_resources(api: client.ApiClient, count: int, parallel: int) -> float:
    """Create ``count`` resources (one POST each) from ``parallel`` threads; seconds taken.

    Each thread keeps one TLS connection and sends bodies serialized once: the bench shares the
    two cores with the API server and the operator, and the typed client's request path cost
    6 CPU seconds per 1,000 POSTs (users' clients run elsewhere)."""
    path = f"/apis/kubeopt.io/v1alpha1/namespaces/{NAMESPACE}/modeloptimizations"
    conf = api.configuration
    target = urllib.parse.urlsplit(conf.host)
    context = ssl.create_default_context(cafile=conf.ssl_ca_cert)
    if conf.cert_file:
        context.load_cert_chain(conf.cert_file, conf.key_file)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = (conf.api_key or {}).get("authorization") or (conf.api_key or {}).get("BearerToken")
    if token:
        headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
    local = threading.local()

    def create(name: str) -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPSConnection(target.hostname, target.port, context=context, timeout=120)
        local.connection.request("POST", path, json.dumps(resource(name)).encode(), headers)
        response = local.connection.getresponse()
        data = response.read()
        if response.status != 201:
            raise RuntimeError(f"creating {name}: {response.status} {data[:300]!r}")

    start = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(create, [f"load-{i:05d}" for i in range(count)]))
    return time.monotonic() - start


def model_events(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every Event on a ModelOptimization of the bench's namespace."""
    response = get(api, f"/api/v1/namespaces/{NAMESPACE}/events",
                   [("fieldSelector", "involvedObject.kind=ModelOptimization")])
    return list(json.loads(response.data)["items"])


def announced_jobs(events: list[dict[str, Any]], jobs: Iterable[str]) -> int:
    """How many of ``jobs`` a JobCreated Event names (one Event names every Job its reconcile created)."""
    words = {word.strip(",()") for e in events if e.get("reason") == "JobCreated"
             for word in e.get("message", "").split()}
    return sum(1 for job in jobs if job in words)


def events_by_reason(events: list[dict[str, Any]]) -> dict[str, int]:
    """Events by reason (each Event's count: repeats the API server folded in)."""
    counts: Counter[str] = Counter()
    for item in events:
        counts[item.get("reason", "")] += int(item.get("count") or 1)
    return dict(counts.most_common())


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def api_requests(api: client.ApiClient) -> dict[str, float]:
    """The API server's ``apiserver_request_total``, summed by "VERB resource[/subresource]"
    (every client: the operator, the bench, the controller manager)."""
    text = get(api, "/metrics", [], accept="text/plain").data.decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        key = f"{labels.get('verb', '?')} {labels.get('resource', '?')}"
        if labels.get("subresource"):
            key += "/" + labels["subresource"]
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def request_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Requests served between two ``api_requests`` readings, largest first, watches and gets of
    /metrics aside."""
    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0 and not k.startswith("WATCH")),
                       key=lambda kv: -kv[1]))


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each named process has used (children not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[name] = round((int(fields[11]) + int(fields[12])) / tick, 1)
    return seconds


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def log_count(path: Path, needle: str) -> int:
    try:
        return sum(needle in line for line in path.read_text(errors="replace").splitlines())
    except OSError:
        return 0


def wait_for(what: str, done: Any, timeout: float, tracker: Tracker | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        if tracker is not None:
            tracker.rejudge()
        time.sleep(1.0)
    print(f"timed out after {timeout:.0f}s waiting for {what}", file=sys.stderr)
    return bool(done())


class BurstCost:
    """What a burst cost from construction to ``stop()``: CPU seconds of each named process and the
    API server's requests by kind."""

    def __init__(self, api: client.ApiClient, processes: dict[str, int]) -> None:
        self.api, self.processes = api, processes
        self.cpu, self.requests = cpu_seconds(processes), api_requests(api)

    def stop(self) -> dict[str, Any]:
        cpu = cpu_seconds(self.processes)
        return {"cpu_s": {k: round(cpu.get(k, v) - v, 1) for k, v in self.cpu.items()},
                "api_requests": request_delta(self.requests, api_requests(self.api))}


def creation_only(args: argparse.Namespace, plane: ControlPlane, kubeconfig: Path) -> dict[str, Any]:
    """The floor under "all Jobs": the same POSTs with no operator running (``--creation-only``)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    cost = BurstCost(api, {**plane.pids(), "bench": os.getpid()})
    load_before = load_average()
    creation = create_resources(api, args.resources, args.parallel)
    return {"resources": args.resources, "label": args.label, "creation_only": True,
            "admission_policies": args.admission, "creation_s": round(creation, 2),
            **cost.stop(), "machine": machine(),
            "load_average": {"before": load_before, "after": load_average()}}


class _Exit:
    """A context manager entered by hand, left by ``stop()`` like the bench's other parts."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def stop(self) -> None:
        self.manager.__exit__(None, None, None)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    kubelet_on = args.kubelet == "on"
    binaries = Path(os.environ["KUBEOPT_E2E_BIN_DIR"]) if os.environ.get("KUBEOPT_E2E_BIN_DIR") else bin_dir()
    plane = ControlPlane(binaries, work / "control-plane")
    kubeconfig = plane.start()
    stack: list[Any] = [plane]
    try:
        kubectl = Kubectl(kubeconfig)
        helm = Helm(binaries / "helm", work / "no-cluster.kubeconfig", work / "helm")
        kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io", timeout=90)
        kubectl("create", "namespace", NAMESPACE)
        kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted",
                "kubeopt.io/enabled=true")
        if args.admission == "on":  # the chart's ValidatingAdmissionPolicies judge every resource and Job
            policies = admission_policies(kubectl, helm, CHART)
            policies.__enter__()
            stack.append(_Exit(policies))
        if args.creation_only:
            return creation_only(args, plane, kubeconfig)
        account, _ = service_account_kubeconfig(kubectl, helm, CHART, work / "operator.kubeconfig")
        env = {**chart_env(helm), **E2E_WORKER_ENV, **dict(kv.split("=", 1) for kv in args.operator_env)}
        dump = work / "tracemalloc.txt"
        if args.tracemalloc:
            site = ROOT / "bench" / "tracemalloc_site"
            env.update(KUBEOPT_TRACEMALLOC_DUMP=str(dump),
                       PYTHONPATH=f"{site}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"))
        operator = OperatorProcess(account, work / "operator.log", env=env, module=args.operator_module)
        operator.start()
        stack.append(operator)
        pid = operator.pid
        api = config.new_client_from_config(config_file=str(kubeconfig))
        tracker = Tracker(args.resources, kubelet_on)
        watches = [Watch(api, "/apis/batch/v1/jobs", tracker.on_job, {"labelSelector": SELECTOR}, METADATA_ONLY),
                   Watch(api, f"/apis/kubeopt.io/v1alpha1/namespaces/{NAMESPACE}/modeloptimizations",
                         tracker.on_resource)]
        for watch in watches:
            watch.start()
        if kubelet_on:
            worker = [sys.executable, str(ROOT / "bench" / "load_worker.py")]
            node = FakeKubelet(kubeconfig, work / "kubelet", executables={"kubeopt": worker},
                               namespaces={NAMESPACE}, poll_interval=1.0,
                               extra_env={"LOAD_WORKER_CACHE": str(work / "summaries")}).start()
            stack.append(node)
        time.sleep(args.idle_seconds)  # the operator's first listings are done and its heap is warm
        idle_rss = rss_kib(pid)
        idle = idle_rss["VmRSS"]
        load_before = load_average()
        cost = BurstCost(api, {**plane.pids(), "operator": pid, "bench": os.getpid()})
        t0 = time.monotonic()
        sampler = RssSampler(pid, t0)
        sampler.start()
        creation = create_resources(api, args.resources, args.parallel)
        print(f"created {args.resources} resources in {creation:.1f}s", file=sys.stderr)
        wait_for("all Jobs", lambda: tracker.all_jobs_at is not None, args.timeout)
        wait_for("settled status", lambda: tracker.settled_at is not None,
                 max(10.0, args.timeout - (time.monotonic() - t0)), tracker)
        time.sleep(args.settle_seconds)  # Events flushed, handlers idle
        tracker.rejudge()
        settled_rss = rss_kib(pid)
        sampler.stop.set()
        spent = cost.stop()
        if args.tracemalloc:
            os.kill(pid, signal.SIGUSR1)
            wait_for("tracemalloc dump", lambda: dump.exists() and dump.stat().st_size > 0, 300)
        metrics = operator.metrics()
        seen = tracker.summary()
        jobs_created_metric = metric_sum(metrics, "kubeopt_target_jobs_created_total")
        held = model_events(api)
        events, reasons = announced_jobs(held, tracker.job_names()), events_by_reason(held)
        for watch in watches:
            watch.stop.set()
        result = {
            "resources": args.resources, "targets_per_resource": len(TARGETS), "kubelet": args.kubelet,
            "admission_policies": args.admission,
            "label": args.label, "timeout_s": args.timeout,
            "creation_s": round(creation, 2),
            "all_jobs_s": round(tracker.all_jobs_at - t0, 2) if tracker.all_jobs_at else None,
            "settled_s": round(tracker.settled_at - t0, 2) if tracker.settled_at else None,
            **seen,
            "rss_mb": {"idle": round(idle / 1024, 1), "peak": round(max(sampler.peak_kib, idle) / 1024, 1),
                       "peak_hwm": round(settled_rss["VmHWM"] / 1024, 1),
                       "settled": round(settled_rss["VmRSS"] / 1024, 1),
                       "idle_anon_file": [round(idle_rss.get(k, 0) / 1024, 1) for k in ("RssAnon", "RssFile")],
                       "settled_anon_file": [round(settled_rss.get(k, 0) / 1024, 1) for k in ("RssAnon", "RssFile")]},
            "reconcile_errors": metric_sum(metrics, "kubeopt_reconcile_errors_total"),
            # What the burst cost, until settled: CPU seconds per process, API requests by kind
            # (every client's; the bench's own are the resources' POSTs and its watches).
            **spent,
            "api_requests_per_resource": round(sum(spent["api_requests"].values()) / args.resources, 2),
            "jobs_created_metric": jobs_created_metric,
            "events": {"job_created_expected": seen["jobs"], "job_created_held": events,
                       "lost": max(0, seen["jobs"] - events), "by_reason": reasons},
            "operator_log": {"could_not_post_event": log_count(operator.log, "could not post event"),
                             "tracebacks": log_count(operator.log, "Traceback")},
            "operator_env": {k: v for k, v in env.items() if k not in ("PYTHONPATH",)},
            "machine": machine(), "load_average": {"before": load_before, "after": load_average()},
            "rss_timeline_s_mb": sampler.timeline,
        }
        if args.tracemalloc:
            result["tracemalloc"] = dump.read_text()
        return result
    finally:
        for part in reversed(stack):
            part.stop()


def table(result: dict[str, Any]) -> str:
    rows = [
        ("resources / kubelet / label", f"{result['resources']} / {result['kubelet']} / {result['label']}"),
        ("admission policies", result.get("admission_policies", "off")),
        ("creation (s)", result["creation_s"]), ("all Jobs (s)", result["all_jobs_s"]),
        ("settled (s)", result["settled_s"]),
        ("Jobs (resources settled)", f"{result['jobs']} ({result['settled']}/{result['resources']})"),
        ("Jobs per resource min/mean/max", "{min}/{mean}/{max}".format(**result["jobs_per_resource"])),
        ("duplicates", result["duplicates"]),
        ("RSS MB idle/peak/settled", "{idle}/{peak}/{settled} (hwm {peak_hwm})".format(**result["rss_mb"])),
        ("reconcile errors", result["reconcile_errors"]),
        ("CPU s during the burst", result["cpu_s"]),
        ("API requests per resource", result["api_requests_per_resource"]),
        ("API requests", dict(list(result["api_requests"].items())[:8])),
        ("lost Events (held/expected)",
         "{lost} ({job_created_held}/{job_created_expected})".format(**result["events"])),
        ("target phases", result["target_phases"]),
        ("load average before/after", f"{result['load_average']['before']} / {result['load_average']['after']}"),
        ("machine", f"{result['machine']['nproc']} x {result['machine']['cpu_model']}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--kubelet", choices=["on", "off"], default="off")
    parser.add_argument("--admission", choices=["on", "off"], default="on",
                        help="apply the chart's admission policies, as a user's cluster has them (rows before "
                             "2026-11-30 ran without)")
    parser.add_argument("--label", default="before", help="before | after (names the result file)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds from the first apply to give up")
    parser.add_argument("--parallel", type=int, default=8, help="threads creating resources")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--settle-seconds", type=float, default=15.0)
    parser.add_argument("--operator-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--creation-only", action="store_true",
                        help="no operator: only time the resources' creation (the floor under all Jobs)")
    parser.add_argument("--operator-module", help="run `python -m MODULE operator` from this checkout instead of the "
                        "operator image (kubeopt.cli; for --tracemalloc and object dumps)")
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/operator_load_...json)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubeopt-load-") as work:
        result = run(args, Path(work))
    kind = "creation" if args.creation_only else args.kubelet
    out = args.out or RESULTS / f"operator_load_{args.resources}_{kind}_{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if "tracemalloc" in result:
        out.with_suffix(".tracemalloc.txt").write_text(result.pop("tracemalloc"))
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result) if not result.get("creation_only") else json.dumps(result, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
