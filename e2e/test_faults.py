"""Faults in CI: the operator killed mid-burst, the API server restarted, S3 gone mid-publish.

Issue 13 tried these by hand against the e2e control plane; here they run on every e2e run,
on the same real parts as ``test_operator.py``: the operator as its own process with the
Helm chart's RBAC token, kube-apiserver/etcd/kube-controller-manager built from source, MinIO,
and the fake kubelet running the real worker. Each test starts the operators it needs (and
stops them), so a killed operator is never one another test relies on.

- Killing the operator: four rounds of ten resources (two targets each, parallelism 2, pods
  that ask for a GPU, which no fake kubelet has: Jobs are created, never run). In each round
  the operator is SIGKILLed at a seeded point of the burst (once a seeded number of the
  round's Jobs exist, seen through a watch) and started again; the last operator must leave
  exactly one Job per (resource, target), owned by its resource, named in its status.
- The API server: a control plane of the test's own (so the session's is never stopped) has
  its kube-apiserver stopped as soon as the operator acts on a resource, and started again on
  the same port 10 s later; etcd keeps the data. The operator rides through (kopf retries its
  watches, and starts them again after its 9 attempts, about 54 s, are spent: a 79 s outage
  was tried by hand and recovered too).
- S3: a MinIO of the test's own behind a tripwire (``kubeopt_e2e.faults``) goes down exactly
  when the worker writes the target's ``manifest.json``, after the artifact's other files;
  then the endpoint refuses connections (the server is gone) or accepts and drops them (a
  load balancer in front of it).

Measured on the two shared cores of CI (the whole file, twice): 146 s and 151 s. Slow parts:
the API server test, 47 s (its own control plane; kube-apiserver takes 10-16 s to start
again, then kopf's watch backoff); the kill test, 26-33 s; each S3 test runs the worker twice,
17-30 s.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import onnx
import pytest
import yaml
from kubeopt_e2e import ControlPlane
from kubeopt_e2e.clients import Helm, Kubectl, uses_external_cluster
from kubeopt_e2e.faults import JobCounter, S3Tripwire
from kubeopt_e2e.kubelet import FakeKubelet
from kubeopt_e2e.operator import (
    E2E_WORKER_ENV,
    OperatorProcess,
    running_operator,
    service_account_kubeconfig,
    worker_images,
)
from onnx import TensorProto, helper
from test_operator import CHART, CRD, condition, eventually, explain, new_namespace, resource, settled

from kubeopt.storage.errors import ManifestMismatch
from kubeopt.storage.manifest import MANIFEST_NAME, verify
from kubeopt.storage.store import S3Settings, S3Store
from kubeopt.storage.uri import StorageURI, parse_uri

TWO_TARGETS = [
    {"name": "ort-all", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "all"}},
    {"name": "ort-basic", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "basic"}},
]
KILL_SEED = 13
KILL_ROUNDS = 4
PER_ROUND = 10
OUTAGE_SECONDS = 10.0
#: Pods that no fake kubelet takes (its node has no GPU), in this module or a later one: the
#: Jobs stay active and nothing runs.
NO_NODE_FITS = {"gpu": 1}

pytestmark = pytest.mark.slow  # every test here takes 15-50 s (see above)


# -- fixtures ------------------------------------------------------------------------------

def install_crd(kubectl: Kubectl) -> None:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")


@pytest.fixture(scope="module")
def operator_kubeconfig(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with the chart's ServiceAccount token, on the session's control plane."""
    install_crd(kubectl)
    return service_account_kubeconfig(kubectl, helm_offline, CHART, tmp_path_factory.mktemp("sa") / "kubeconfig")[0]


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (later modules' operators resume every resource)."""
    name = new_namespace(kubectl, "e2e-faults")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- the operator killed during a burst ----------------------------------------------------

def owned_jobs(kubectl: Kubectl, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Owner UID -> the Jobs that name it as their controller (every Job of the namespace)."""
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for job in kubectl.json("get", "jobs", "-n", namespace)["items"]:
        owners = [o["uid"] for o in job["metadata"].get("ownerReferences", []) if o.get("controller")]
        by_owner.setdefault(owners[0] if len(owners) == 1 else "(no single owner)", []).append(job)
    return by_owner


def job_gaps(kubectl: Kubectl, namespace: str, expected: int) -> list[str]:
    """What is wrong with the namespace's Jobs and statuses; empty once every resource has exactly
    one Job per target, owned by it, and its status names each target's Job."""
    resources = kubectl.json("get", "mopt", "-n", namespace)["items"]
    jobs = owned_jobs(kubectl, namespace)
    gaps = [f"{len(resources)} resources, expected {expected}"] if len(resources) != expected else []
    uids = {r["metadata"]["uid"] for r in resources}
    gaps += [f"{len(v)} Jobs owned by {k}, no such resource" for k, v in jobs.items() if k not in uids]
    for body in resources:
        name = body["metadata"]["name"]
        mine = jobs.get(body["metadata"]["uid"], [])
        per_target = sorted(j["metadata"]["labels"].get("kubeopt.io/target", "?") for j in mine)
        if per_target != ["ort-all", "ort-basic"]:
            gaps.append(f"{name}: Jobs for targets {per_target}")
        listed = {t["name"]: t.get("jobName") for t in body.get("status", {}).get("targets", [])}
        actual = {j["metadata"]["labels"].get("kubeopt.io/target"): j["metadata"]["name"] for j in mine}
        if listed != actual:
            gaps.append(f"{name}: status lists {listed}, Jobs are {actual}")
    return gaps


def test_killing_the_operator_repeatedly_during_a_burst_leaves_one_job_per_target_and_none_missing(
        kubectl: Kubectl, operator_kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    rng = random.Random(KILL_SEED)
    due = 2 * KILL_ROUNDS * PER_ROUND
    operator = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log", env=E2E_WORKER_ENV)
    kills: list[tuple[int, int, int]] = []  # (Jobs that triggered the kill, Jobs after it, Jobs due then)
    jobs = JobCounter(kubectl.kubeconfig, namespace).start()
    operator.start()
    try:
        for round_ in range(KILL_ROUNDS):
            batch = [resource(f"burst-{round_ * PER_ROUND + i:02d}", namespace, TWO_TARGETS, parallelism=2,
                              resources=NO_NODE_FITS) for i in range(PER_ROUND)]
            kubectl.apply(yaml.safe_dump_all(batch))
            # The kill comes at a seeded point of the round's work: once this many Jobs exist.
            trigger = 2 * PER_ROUND * round_ + rng.randint(1, PER_ROUND)
            jobs.wait_for(trigger)
            operator.kill()
            after = sum(len(v) for v in owned_jobs(kubectl, namespace).values())  # from the API: nothing lags
            kills.append((trigger, after, 2 * PER_ROUND * (round_ + 1)))
            operator.start()
        why = f"seed {KILL_SEED}, kills (Jobs that triggered it, Jobs after it, Jobs due then): {kills}"
        print(why)
        eventually("one Job per target, in status", lambda: not job_gaps(kubectl, namespace, KILL_ROUNDS * PER_ROUND),
                   timeout=120, interval=1.0,
                   explain=lambda: f"{why}\n" + "\n".join(job_gaps(kubectl, namespace, KILL_ROUNDS * PER_ROUND)[:20])
                   + "\n" + operator.tail())
        time.sleep(3)  # a late duplicate would show now
        assert job_gaps(kubectl, namespace, KILL_ROUNDS * PER_ROUND) == [], why
        assert operator.running(), operator.tail()
    finally:
        operator.stop()
        jobs.stop()
    assert sum(len(v) for v in owned_jobs(kubectl, namespace).values()) == due
    # A kill must hit work in progress, or this test would prove nothing about resuming it. How many
    # do depends on how fast the operator is against the watch that triggers the kill (3 of 4 and
    # 4 of 4 were seen), so at least one, not all.
    assert any(after < due_then for _, after, due_then in kills), why


# -- the API server stopped and started under a running operator ---------------------------

@pytest.fixture(scope="module")
def own_control_plane(e2e_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this module's own: the session's is never stopped."""
    if uses_external_cluster():
        pytest.skip("stopping kube-apiserver needs the control plane the tests start")
    with ControlPlane(e2e_bin_dir, tmp_path_factory.mktemp("outage")) as plane:
        yield plane


def test_an_api_server_restart_under_a_running_operator_loses_no_resource_and_duplicates_no_job(
        own_control_plane: ControlPlane, helm_offline: Helm, tmp_path: Path) -> None:
    kubectl = Kubectl(own_control_plane.kubeconfig_path)
    install_crd(kubectl)
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART, tmp_path / "kubeconfig")
    namespace = new_namespace(kubectl, "e2e-outage")
    with running_operator(kubeconfig, tmp_path / "operator.log") as operator:
        kubectl.apply(yaml.safe_dump(resource("before", namespace, TWO_TARGETS, parallelism=2,
                                              resources=NO_NODE_FITS)))
        # The outage starts as soon as the operator acts on "before" (its watches are live): it
        # meets the outage in the middle of that work (the second Job, the status, the Events).
        eventually("the operator's first Job", lambda: kubectl("get", "jobs", "-n", namespace, "-o", "name").stdout,
                   timeout=60, interval=0.05, explain=operator.tail)

        own_control_plane.stop_apiserver()
        time.sleep(OUTAGE_SECONDS)
        assert operator.running(), operator.tail()
        own_control_plane.start_apiserver()
        kubectl.apply(yaml.safe_dump(resource("after", namespace, TWO_TARGETS, parallelism=2,
                                              resources=NO_NODE_FITS)))

        why = explain(kubectl, namespace, operator)
        eventually("both resources with one Job per target, in status", lambda: not job_gaps(kubectl, namespace, 2),
                   timeout=90, interval=1.0,
                   explain=lambda: "\n".join(job_gaps(kubectl, namespace, 2)) + "\n" + why())
        time.sleep(2)
        assert job_gaps(kubectl, namespace, 2) == []
        assert operator.running(), operator.tail()  # the one process started above, never restarted
    observed = {b["metadata"]["name"]: b["status"]["observedGeneration"]
                for b in kubectl.json("get", "mopt", "-n", namespace)["items"]}
    assert observed == {"before": 1, "after": 1}


# -- S3 down while a target publishes -------------------------------------------------------

def tiny_classifier(path: Path) -> Path:
    """A linear classifier of 8x8 images as one ONNX file (the worker only needs a real model)."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], [((i * 7) % 13) / 13.0 for i in range(640)])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [10], [0.0] * 10)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"]), helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializer=[weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


@pytest.fixture(scope="module")
def tripwire(e2e_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             monkeypatch_module: pytest.MonkeyPatch) -> Iterator[S3Tripwire]:
    """A MinIO of this module's own (the session's stays up) with buckets models and artifacts."""
    with S3Tripwire(e2e_bin_dir, tmp_path_factory.mktemp("s3-tripwire")) as s3:
        monkeypatch_module.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
        monkeypatch_module.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
        client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                              aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
        for bucket in ("models", "artifacts"):
            client.create_bucket(Bucket=bucket)
        model = tiny_classifier(tmp_path_factory.mktemp("model") / "tiny.onnx")
        client.upload_file(str(model), "models", "digits/digits_cnn.onnx")
        yield s3


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def manifests_that_verify(store: S3Store, prefix: StorageURI) -> list[str]:
    """Every ``manifest.json`` under ``prefix`` (at any depth) whose artifact verifies."""
    good = []
    for item in store.list(prefix):
        if not item.key.endswith("/" + MANIFEST_NAME):
            continue
        folder = StorageURI(item.scheme, item.bucket, item.key[: -len(MANIFEST_NAME)])
        try:
            verify(store, folder)
        except ManifestMismatch:
            continue
        good.append(str(item))
    return good


@pytest.mark.parametrize("drop_connections", [False, True],
                         ids=["endpoint-refuses-connections", "endpoint-drops-connections"])
def test_s3_going_down_while_a_target_publishes_fails_it_with_storage_error_and_nothing_reads_as_complete(
        kubectl: Kubectl, operator_kubeconfig: Path, tripwire: S3Tripwire, namespace: str, drop_connections: bool,
        tmp_path: Path) -> None:
    tripwire.restore()  # up, whatever a failed test before left
    kubectl("create", "secret", "generic", "s3", "-n", namespace,
            f"--from-literal=AWS_ACCESS_KEY_ID={tripwire.access_key}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={tripwire.secret_key}")
    storage = {"secretRef": {"name": "s3"}, "endpoint": tripwire.endpoint_url, "region": tripwire.region}
    body = resource("flaky", namespace, [{"name": "ort", "backend": "onnxruntime"}], storage=storage, backoffLimit=0)
    prefix = f"/artifacts/{namespace}/flaky/ort/"
    tripwire.arm(lambda method, path: method == "PUT" and path.startswith(prefix)
                 and path.split("?")[0].endswith("/" + MANIFEST_NAME), drop_connections=drop_connections)
    store = S3Store(S3Settings(endpoint_url=tripwire.endpoint_url, region=tripwire.region))
    with FakeKubelet(kubectl.kubeconfig, tmp_path / "kubelet", namespaces={namespace}, images=worker_images()), \
            running_operator(operator_kubeconfig, tmp_path / "operator.log") as operator:
        why = explain(kubectl, namespace, operator)
        kubectl.apply(yaml.safe_dump(body))

        failed = eventually("Stalled", lambda: settled(kubectl, "flaky", namespace), timeout=180, explain=why)

        assert tripwire.tripped.is_set() and tripwire.tripped_by.startswith(f"PUT {prefix}"), tripwire.tripped_by
        target = failed["status"]["targets"][0]
        print(f"S3 went down at {tripwire.tripped_by}; the target says: {target['message']}")
        assert (target["phase"], target["reason"]) == ("Failed", "StorageError"), target
        assert "storage.endpoint" in target["message"] and tripwire.endpoint_url in target["message"], target
        assert (condition(failed, "Ready")["status"], condition(failed, "Stalled")["reason"]) == \
            ("False", "StorageError")
        tripwire.restore()
        uploaded = [str(item) for item in store.list(parse_uri(f"s3:/{prefix}"))]
        assert any(key.endswith("/model.onnx") for key in uploaded), uploaded  # a partial upload, really
        assert manifests_that_verify(store, parse_uri(f"s3:/{prefix}")) == []

        # With S3 back, a retry (the spec changed, so a new Job) publishes an artifact that verifies.
        kubectl("patch", "mopt", "flaky", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"benchmark": {"iterations": 12}}}))
        done = eventually("generation 2 settled", lambda: settled(kubectl, "flaky", namespace), timeout=180,
                          explain=why)
    assert condition(done, "Ready")["status"] == "True", done["status"]
    artifact = done["status"]["targets"][0]["artifact"]["uri"]
    assert "model.onnx" in [e.path for e in verify(store, parse_uri(artifact))]
    assert manifests_that_verify(store, parse_uri(f"s3:/{prefix}")) != []
