"""The operator on a real control plane: admission, Jobs, the real worker, status, metrics.

The operator runs as its own process with a token of the Helm chart's ServiceAccount, bound
only to the chart's RBAC. A fake kubelet (``kubeopt_e2e.kubelet``) binds the Jobs' pods and
runs the real worker (``kubeopt run``) against a real S3 server; pods that ask for a GPU do
not fit its node and stay Pending, where a test plays the scheduler's part.
"""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import onnx
import pytest
import yaml
from kubeopt_e2e import S3Server
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.kubelet import FakeKubelet, enforces_memory_limits, memory_bytes
from kubeopt_e2e.operator import (
    OperatorProcess,
    admission_policies,
    running_operator,
    service_account_kubeconfig,
    worker_images,
)
from kubeopt_e2e.throttle import ThrottlingWebhook

from kubeopt.storage.manifest import verify
from kubeopt.storage.store import S3Settings, S3Store
from kubeopt.storage.uri import parse_uri

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
SELECTOR = "app.kubernetes.io/managed-by=kubeopt"
T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 120.0, interval: float = 0.5,
               explain: Callable[[], str] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``explain()`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = explain() if explain else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in resource.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def settled(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any] | None:
    """The resource once it is Ready or Stalled (for this generation), else None."""
    got: dict[str, Any] = kubectl.json("get", "mopt", name, "-n", namespace)
    done = any(condition(got, kind).get("status") == "True" for kind in ("Ready", "Stalled"))
    return got if done and got["status"].get("observedGeneration") == got["metadata"]["generation"] else None


def new_namespace(kubectl: Kubectl, prefix: str) -> str:
    """A fresh namespace that enforces the restricted Pod Security Standard and opted in to kubeopt."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted", "kubeopt.io/enabled=true")
    return name


def resource(name: str, namespace: str, targets: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/digits/digits_cnn.onnx", "format": "onnx", "task": "classification",
                  "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
        "targets": targets,
        "benchmark": {"batchSizes": [1, 32], "warmup": 2, "iterations": 10},
        "output": {"uri": f"s3://artifacts/{namespace}/{name}"},
        "resources": {"gpu": 0},
    }
    body.update(spec)
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> None:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")


@pytest.fixture(scope="module")
def operator_account(kubectl: Kubectl, helm_offline: Helm, crd: None,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(kubeconfig, user) of the chart's ServiceAccount, bound only to the chart's RBAC."""
    return service_account_kubeconfig(kubectl, helm_offline, CHART, tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture(scope="module")
def policies(kubectl: Kubectl, helm_offline: Helm, crd: None) -> Iterator[None]:
    """The chart's admission policies, enforced while this module's tests run (as a release has them)."""
    with admission_policies(kubectl, helm_offline, CHART):
        yield


@pytest.fixture(scope="module")
def operator(operator_account: tuple[Path, str], policies: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(operator_account[0], tmp_path_factory.mktemp("operator") / "operator.log") as process:
        yield process


@pytest.fixture(scope="module")
def storage(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory,
            monkeypatch_module: pytest.MonkeyPatch) -> S3Store:
    """Buckets ``models`` (the digits CNN, calibration and validation data) and ``artifacts``."""
    monkeypatch_module.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch_module.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name=s3_server.region,
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for bucket in ("models", "artifacts"):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "examples" / "digits" / "make_digits.py")
    assert spec and spec.loader
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    paths = make_digits.build(tmp_path_factory.mktemp("digits"), epochs=8)
    # One self-contained file: the exporter writes weights beside the model (.onnx.data), and a
    # key that prefixes another key is fetched as a folder by the worker's S3 store.
    whole = Path(paths["onnx"]).with_name("whole.onnx")
    onnx.save_model(onnx.load(str(paths["onnx"])), str(whole), save_as_external_data=False)
    s3.upload_file(str(whole), "models", "digits/digits_cnn.onnx")
    for key in ("calibration", "validation"):
        s3.upload_file(str(paths[key]), "models", f"digits/{Path(paths[key]).name}")
    return S3Store(S3Settings(endpoint_url=s3_server.endpoint_url, region=s3_server.region))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def kubelet(control_plane: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubelet]:
    with FakeKubelet(control_plane, tmp_path_factory.mktemp("kubelet"), images=worker_images()) as node:
        yield node


def storage_secret(kubectl: Kubectl, namespace: str, s3_server: S3Server) -> None:
    kubectl("create", "secret", "generic", "s3", "-n", namespace,
            f"--from-literal=AWS_ACCESS_KEY_ID={s3_server.access_key}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_server.secret_key}")


def storage_spec(s3_server: S3Server) -> dict[str, Any]:
    return {"secretRef": {"name": "s3"}, "endpoint": s3_server.endpoint_url, "region": s3_server.region}


def jobs_of(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "jobs", "-n", namespace, "-l", SELECTOR)["items"])


def explain(kubectl: Kubectl, namespace: str, operator: OperatorProcess | None = None) -> Callable[[], str]:
    def text() -> str:
        parts = [kubectl("get", "mopt,jobs,pods", "-n", namespace, "-o", "yaml", check=False).stdout[-6000:]]
        if operator is not None:
            parts.append(operator.tail())
        return "\n".join(parts)
    return text


# -- a) admission ----------------------------------------------------------------------------

ORT = {"name": "ort", "backend": "onnxruntime"}
INVALID = [
    ("int8-without-calibration", [{**ORT, "precision": "int8"}], "int8 targets need spec.calibration"),
    ("options-of-another-backend", [{**ORT, "tensorrt": {}}], "options block tensorrt is only for backend tensorrt"),
    ("duplicate-target-names", [ORT, ORT], "target names must be unique"),
    ("fp8-outside-torch-compile", [{**ORT, "precision": "fp8"}],
     "spec.targets[].precision: a target of backend onnxruntime asks for a precision it does not build there; "
     "onnxruntime builds fp32, fp16, int8 on a CPU"),
    ("unknown-precision", [{**ORT, "precision": "fp64"}], 'spec.targets[0].precision: Unsupported value: "fp64"'),
]


@pytest.mark.parametrize(("name", "targets", "message"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_spec_is_rejected_at_admission_with_the_fields_message(
        kubectl: Kubectl, crd: None, name: str, targets: list[dict[str, Any]], message: str) -> None:
    manifest = yaml.safe_dump(resource(name, "default", targets))

    result = kubectl("apply", "-f", "-", input=manifest, check=False)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# What a backend does not support (kubeopt.api.backends), refused by the CRD's CEL rules with the field named.
UNSUPPORTED = [
    ("gpu-backend-on-a-cpu", [{"name": "trt", "backend": "tensorrt"}], {},
     "spec.targets[].backend: backend tensorrt needs a GPU (spec.resources.gpu is 0)"),
    ("precision-on-a-cpu", [{"name": "tc", "backend": "torch-compile", "precision": "fp8"}],
     {"model": {"uri": "s3://models/m.pt2", "format": "torch-export", "inputs": [{"name": "x", "shape": [-1, 4]}]}},
     "spec.targets[].precision: a target of backend torch-compile asks for a precision it does not build there; "
     "torch-compile builds fp32, fp16, bf16, int8 on a CPU"),
    ("torch-compile-of-torchscript", [{"name": "tc", "backend": "torch-compile"}],
     {"model": {"uri": "s3://models/m.ts", "format": "torchscript", "inputs": [{"name": "x", "shape": [-1, 4]}]}},
     "spec.model.format: backend torch-compile accepts torch-export only"),
    ("tf-trt-of-keras", [{"name": "tf", "backend": "tf-trt"}],
     {"model": {"uri": "s3://models/m.keras", "format": "keras", "inputs": [{"name": "x", "shape": [-1, 4]}]},
      "resources": {"gpu": 1}},
     "spec.model.format: backend tf-trt accepts tensorflow-savedmodel only"),
    ("calibration-method-the-backend-lacks", [{**ORT, "precision": "int8"}],
     {"calibration": {"uri": "s3://models/c.npz", "method": "histogram"}},
     "spec.calibration.method: backend onnxruntime calibrates int8 with entropy, minmax, percentile only"),
]


@pytest.mark.parametrize(("name", "targets", "spec", "message"), UNSUPPORTED, ids=[case[0] for case in UNSUPPORTED])
def test_what_a_backend_does_not_support_is_refused_by_the_api_server_naming_the_field(
        kubectl: Kubectl, crd: None, name: str, targets: list[dict[str, Any]], spec: dict[str, Any],
        message: str) -> None:
    manifest = yaml.safe_dump(resource(name, "default", targets, **spec))

    result = kubectl("apply", "--server-side", "-f", "-", input=manifest, check=False)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_what_a_backend_supports_is_admitted(kubectl: Kubectl, crd: None) -> None:
    model = {"uri": "s3://models/m.pt2", "format": "torch-export", "inputs": [{"name": "x", "shape": [-1, 4]}]}
    targets = [{"name": "tc-fp8", "backend": "torch-compile", "precision": "fp8"},
               {"name": "tc-int8", "backend": "torch-compile", "precision": "int8"},
               {"name": "trt-int8", "backend": "tensorrt", "precision": "int8"}]
    manifest = yaml.safe_dump(resource("supported", "default", targets, model=model, resources={"gpu": 1},
                                       calibration={"uri": "s3://models/c.npz", "method": "minmax"}))

    result = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest, check=False)

    assert result.returncode == 0, result.stderr


# -- b) least privilege ------------------------------------------------------------------------

WORKER = "system:serviceaccount:{namespace}:kubeopt-worker"
# (verb, resource [name] [--subresource], what the operator may, what the worker may), in a
# namespace that opted in: neither may read Secrets or create pods; the worker may do nothing.
CAN_I = [
    ("create", "jobs.batch", "yes", "no"), ("delete", "jobs.batch", "yes", "no"),
    ("patch", "modeloptimizations.kubeopt.io --subresource=status", "yes", "no"),
    ("patch", "modeloptimizations.kubeopt.io", "yes", "no"),
    ("create", "modeloptimizations.kubeopt.io", "no", "no"), ("delete", "modeloptimizations.kubeopt.io", "no", "no"),
    ("list", "pods", "yes", "no"), ("create", "events", "yes", "no"),
    ("create", "serviceaccounts", "yes", "no"), ("get", "serviceaccounts/kubeopt-worker", "yes", "no"),
    ("get", "serviceaccounts/default", "no", "no"),
    ("create", "serviceaccounts/kubeopt-worker --subresource=token", "no", "no"),
    ("get", "secrets", "no", "no"), ("list", "secrets", "no", "no"), ("watch", "secrets", "no", "no"),
    ("create", "pods", "no", "no"), ("create", "pods --subresource=exec", "no", "no"),
    ("create", "deployments.apps", "no", "no"), ("create", "cronjobs.batch", "no", "no"),
    ("get", "configmaps", "no", "no"), ("create", "rolebindings.rbac.authorization.k8s.io", "no", "no"),
    ("list", "kopfpeerings.kopf.dev", "no", "no"),
]


@pytest.fixture(scope="module")
def served_namespace(kubectl: Kubectl) -> str:
    return new_namespace(kubectl, "e2e-can-i")


@pytest.mark.parametrize(("verb", "what", "operator_may", "worker_may"), CAN_I,
                         ids=[f"{verb}-{what}" for verb, what, _, _ in CAN_I])
def test_the_operator_may_do_only_what_it_needs_and_the_worker_nothing(
        kubectl: Kubectl, operator_account: tuple[Path, str], served_namespace: str, verb: str, what: str,
        operator_may: str, worker_may: str) -> None:
    worker = WORKER.format(namespace=served_namespace)
    ask = ["auth", "can-i", verb, *what.split(), "-n", served_namespace]

    as_operator = kubectl(*ask, f"--as={operator_account[1]}", check=False)
    as_worker = kubectl(*ask, f"--as={worker}",
                        "--as-group=system:serviceaccounts", f"--as-group=system:serviceaccounts:{served_namespace}",
                        "--as-group=system:authenticated", check=False)

    print(f"can-i {verb} {what}: operator={as_operator.stdout.strip()} worker={as_worker.stdout.strip()}")
    assert (as_operator.stdout.strip(), as_worker.stdout.strip()) == (operator_may, worker_may)


def test_the_worker_account_the_operator_creates_has_no_token_and_no_binding(
        kubectl: Kubectl, finished_run: dict[str, Any]) -> None:
    namespace = finished_run["namespace"]
    account = kubectl.json("get", "serviceaccount", "kubeopt-worker", "-n", namespace)
    bindings = kubectl.json("get", "rolebindings,clusterrolebindings", "-A")["items"]

    subjects = [(s.get("namespace"), s["name"]) for b in bindings for s in b.get("subjects") or []
                if s["kind"] == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    assert (namespace, "kubeopt-worker") not in subjects
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", SELECTOR)["items"]
    assert {pod["spec"]["serviceAccountName"] for pod in pods} == {"kubeopt-worker"}
    assert all(pod["spec"]["automountServiceAccountToken"] is False for pod in pods)
    assert not [v for pod in pods for v in pod["spec"].get("volumes", []) if "projected" in v]  # no token volume


def test_helm_chart_lints_and_renders_its_crd_byte_identical(helm_offline: Helm) -> None:
    lint = helm_offline("lint", str(CHART))
    rendered = helm_offline("template", "kubeopt", str(CHART), "--namespace", "kubeopt-system",
                            "--set", "serviceMonitor.enabled=true", "--include-crds").stdout

    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert "0 chart(s) failed" in lint.stdout
    assert {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "ServiceMonitor",
            "CustomResourceDefinition"} <= kinds
    assert (CHART / "crds" / CRD.name).read_bytes() == CRD.read_bytes()


# -- c, d) the whole job ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
                 s3_server: S3Server) -> dict[str, Any]:
    """fp32 and int8 ONNX Runtime targets of the digits CNN, run to the end."""
    namespace = new_namespace(kubectl, "e2e-run")
    storage_secret(kubectl, namespace, s3_server)
    body = resource("digits", namespace, [
        {"name": "ort-fp32", "backend": "onnxruntime", "precision": "fp32"},
        {"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"},
    ], calibration={"uri": "s3://models/digits/calibration.npz", "samples": 256, "method": "minmax"},
        validation={"uri": "s3://models/digits/validation.npz",
                    "budget": {"maxTop1Drop": 0.03, "maxRelativeError": 0.2}},
        storage=storage_spec(s3_server), parallelism=2)
    kubectl.apply(yaml.safe_dump(body))
    jobs = eventually("two target Jobs", lambda: len(jobs_of(kubectl, namespace)) == 2 and jobs_of(kubectl, namespace),
                      explain=explain(kubectl, namespace, operator))

    done = eventually("Ready or Stalled", lambda: settled(kubectl, "digits", namespace), timeout=420,
                      explain=explain(kubectl, namespace, operator))
    assert condition(done, "Ready").get("status") == "True", done.get("status")
    return {"namespace": namespace, "jobs": jobs, "resource": done}


def test_each_target_gets_one_labelled_job_owned_by_the_resource(finished_run: dict[str, Any]) -> None:
    jobs = finished_run["jobs"]
    owner_uid = finished_run["resource"]["metadata"]["uid"]

    assert sorted(j["metadata"]["labels"]["kubeopt.io/target"] for j in jobs) == ["ort-fp32", "ort-int8"]
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 63
        assert job["metadata"]["labels"]["kubeopt.io/optimization"] == "digits"
        assert job["metadata"]["labels"]["kubeopt.io/generation"] == "1"
        assert [o["uid"] for o in job["metadata"]["ownerReferences"]] == [owner_uid]


def test_the_jobs_pods_pass_the_restricted_pod_security_standard(kubectl: Kubectl,
                                                                  finished_run: dict[str, Any]) -> None:
    pods = kubectl.json("get", "pods", "-n", finished_run["namespace"], "-l", SELECTOR)["items"]

    assert pods  # admitted in a namespace that enforces "restricted"
    context = pods[0]["spec"]["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_resource_becomes_ready_with_metrics_and_a_best_target(finished_run: dict[str, Any]) -> None:
    status = finished_run["resource"]["status"]

    targets = {t["name"]: t for t in status["targets"]}
    assert {t["phase"] for t in targets.values()} == {"Succeeded"}
    for target in targets.values():
        assert float(target["metrics"]["throughput"]) > 0
        assert target["metrics"]["batchSize"] == 32
        assert target["attempts"] == 1
    assert status["bestTarget"] in targets
    assert status["best"]["target"] == status["bestTarget"]
    assert float(status["bestSpeedup"]) > 0
    assert status["phase"] == "Succeeded"
    assert status["observedGeneration"] == 1
    assert condition(finished_run["resource"], "Reconciling")["status"] == "False"
    assert condition(finished_run["resource"], "Stalled")["status"] == "False"


def test_every_target_artifact_verifies_against_its_manifest_in_the_bucket(
        finished_run: dict[str, Any], storage: S3Store) -> None:
    for target in finished_run["resource"]["status"]["targets"]:
        uri = target["artifact"]["uri"]

        entries = verify(storage, parse_uri(uri))

        assert "model.onnx" in [e.path for e in entries], uri


def test_kubectl_get_prints_phase_best_and_speedup(kubectl: Kubectl, finished_run: dict[str, Any]) -> None:
    out = kubectl("get", "mopt", "-n", finished_run["namespace"]).stdout

    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "PHASE", "BEST", "SPEEDUP"]
    assert row.split()[:3] == ["digits", "Succeeded", finished_run["resource"]["status"]["bestTarget"]]


def test_transitions_are_reported_as_events_on_the_resource(kubectl: Kubectl, finished_run: dict[str, Any]) -> None:
    namespace = finished_run["namespace"]

    def reasons() -> set[str] | None:
        events = kubectl.json("get", "events", "-n", namespace,
                              "--field-selector", "involvedObject.kind=ModelOptimization")["items"]
        found = {e["reason"] for e in events}
        return found if {"JobCreated", "TargetSucceeded", "Succeeded"} <= found else None

    eventually("events JobCreated, TargetSucceeded, Succeeded", reasons, timeout=30)


def test_metrics_endpoint_shows_per_target_gauges(operator: OperatorProcess, finished_run: dict[str, Any]) -> None:
    namespace = finished_run["namespace"]

    text = operator.metrics()

    for target in ("ort-fp32", "ort-int8"):
        labels = f'name="digits",namespace="{namespace}",target="{target}"'
        assert f"kubeopt_target_throughput_samples_per_second{{{labels}}}" in text
        assert f"kubeopt_target_speedup_ratio{{{labels}}}" in text
        assert f"kubeopt_target_compile_seconds{{{labels}}}" in text
    assert 'kubeopt_optimizations{phase="Succeeded"}' in text
    assert "kubeopt_target_jobs_created_total" in text


def test_deleting_the_resource_removes_its_jobs_and_series_and_keeps_its_artifacts(
        kubectl: Kubectl, operator: OperatorProcess, finished_run: dict[str, Any], storage: S3Store) -> None:
    namespace = finished_run["namespace"]

    kubectl("delete", "mopt", "digits", "-n", namespace, "--wait=false")

    eventually("the garbage collector to delete the Jobs", lambda: not jobs_of(kubectl, namespace), timeout=90,
               explain=explain(kubectl, namespace))
    series = f'name="digits",namespace="{namespace}"'
    eventually("the per-target series to go", lambda: series not in operator.metrics(), timeout=30)
    for target in finished_run["resource"]["status"]["targets"]:
        assert verify(storage, parse_uri(target["artifact"]["uri"]))


# -- e) restart --------------------------------------------------------------------------------

def test_restarted_operator_creates_no_duplicate_jobs_and_collects_every_result(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-restart")
    storage_secret(kubectl, namespace, s3_server)
    body = resource("restart", namespace, [
        {"name": "ort-all", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "all"}},
        {"name": "ort-basic", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "basic"}},
    ], storage=storage_spec(s3_server), parallelism=1)
    kubectl.apply(yaml.safe_dump(body))
    eventually("the first Job", lambda: jobs_of(kubectl, namespace), explain=explain(kubectl, namespace, operator))

    operator.kill()
    first = eventually("the first Job to finish while the operator is down",
                       lambda: [j for j in jobs_of(kubectl, namespace) if j["status"].get("succeeded")],
                       timeout=240, explain=explain(kubectl, namespace))
    operator.start()

    done = eventually("Ready or Stalled after the restart", lambda: settled(kubectl, "restart", namespace),
                      timeout=300, explain=explain(kubectl, namespace, operator))
    assert condition(done, "Ready").get("status") == "True", done.get("status")
    jobs = jobs_of(kubectl, namespace)
    assert len(jobs) == 2
    assert first[0]["metadata"]["name"] in {j["metadata"]["name"] for j in jobs}
    assert [t["phase"] for t in done["status"]["targets"]] == ["Succeeded", "Succeeded"]
    assert all(t["metrics"]["throughput"] for t in done["status"]["targets"])
    ran = [r for r in kubelet.finished() if r.namespace == namespace]
    assert len(ran) == 2


# -- immutable runs: a failed re-run never becomes current --------------------------------------

def tree(store: S3Store, prefix: str) -> list[str]:
    """Every key under ``prefix`` relative to it, sorted: what a reader of the bucket sees."""
    return sorted(item.key[len(prefix):] for item in store.list(parse_uri(f"s3://artifacts/{prefix}")))


def test_a_rerun_over_a_tighter_budget_leaves_the_pointer_on_the_last_good_run_in_the_bucket(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-runs")
    storage_secret(kubectl, namespace, s3_server)
    body = resource("runs", namespace, [{"name": "ort-int8", "backend": "onnxruntime", "precision": "int8"}],
                    calibration={"uri": "s3://models/digits/calibration.npz", "samples": 128, "method": "minmax"},
                    validation={"uri": "s3://models/digits/validation.npz", "budget": {"maxRelativeError": 0.5}},
                    storage=storage_spec(s3_server))
    kubectl.apply(yaml.safe_dump(body))
    good = eventually("generation 1 settled", lambda: settled(kubectl, "runs", namespace), timeout=300,
                      explain=explain(kubectl, namespace, operator))
    assert condition(good, "Ready")["status"] == "True", good["status"]
    first = good["status"]["targets"][0]
    pointer_key = f"{namespace}/runs/ort-int8/current.json"
    pointer = json.loads(storage.get_bytes(parse_uri(f"s3://artifacts/{pointer_key}")))
    assert (pointer["uri"], pointer["manifestSha256"]) == (first["artifact"]["uri"], first["artifact"]["sha256"])
    assert pointer["runId"] == first["artifact"]["runId"] and "-g1-" in pointer["runId"]

    kubectl("patch", "mopt", "runs", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"validation": {"budget": {"maxRelativeError": 1e-9}}}}))
    tight = eventually("generation 2 settled", lambda: settled(kubectl, "runs", namespace), timeout=300,
                       explain=explain(kubectl, namespace, operator))

    target = tight["status"]["targets"][0]
    assert (target["phase"], target["reason"]) == ("Failed", "AccuracyBudgetExceeded"), target
    failed_run = target["runUri"]
    assert "-g2-" in failed_run and failed_run != first["artifact"]["uri"]
    record = json.loads(storage.get_bytes(parse_uri(failed_run).join("run.json")))
    assert (record["status"], record["reason"]) == ("Failed", "AccuracyBudgetExceeded")
    failed_prefix = parse_uri(failed_run).key + "/"
    assert tree(storage, failed_prefix) == ["run.json"]  # nothing of the failed run is readable as an artifact
    assert json.loads(storage.get_bytes(parse_uri(f"s3://artifacts/{pointer_key}"))) == pointer
    assert "model.onnx" in [e.path for e in verify(storage, parse_uri(pointer["uri"]))]
    print(f"s3://artifacts/{namespace}/runs/:\n  " + "\n  ".join(tree(storage, f"{namespace}/runs/")))


# -- stuck: Unschedulable --------------------------------------------------------------------

def test_a_pod_no_node_can_take_stalls_the_resource_with_the_schedulers_message(
        kubectl: Kubectl, operator: OperatorProcess, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-stuck")
    body = resource("gpu", namespace, [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                    resources={"gpu": 1})
    kubectl.apply(yaml.safe_dump(body))
    pod = eventually("the target's pod", lambda: kubectl.json("get", "pods", "-n", namespace)["items"],
                     explain=explain(kubectl, namespace, operator))[0]
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    started = time.monotonic()

    # What the scheduler writes when no node fits the pod.
    kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                                         "reason": "Unschedulable", "message": message}]}}))

    def stalled() -> dict[str, Any] | None:
        got: dict[str, Any] = kubectl.json("get", "mopt", "gpu", "-n", namespace)
        return got if condition(got, "Stalled").get("status") == "True" else None

    done = eventually("Stalled=True", stalled, timeout=60, explain=explain(kubectl, namespace, operator))
    assert time.monotonic() - started < 60
    assert condition(done, "Stalled")["reason"] == "Unschedulable"
    assert message in condition(done, "Stalled")["message"]
    assert done["status"]["targets"][0]["reason"] == "Unschedulable"
    assert condition(done, "Ready")["status"] == "False"
    # What KubeoptOptimizationStalled and the dashboard's "Stalled optimizations" read.
    series = (f'kubeopt_optimization_condition{{condition="Stalled",name="gpu",namespace="{namespace}",'
              'reason="Unschedulable"} 1.0')
    eventually("the Stalled condition series", lambda: series in operator.metrics(), timeout=10,
               explain=operator.tail)


# -- out of memory: OOMKilled ----------------------------------------------------------------

def test_kubernetes_memory_quantities_are_read_as_bytes() -> None:
    assert [memory_bytes(q) for q in ("48Mi", "1Gi", "500M", "1048576", "1.5Ki")] == \
        [48 * 2**20, 2**30, 500 * 10**6, 2**20, 1536]


@pytest.mark.skipif(not enforces_memory_limits(),
                    reason="the fake kubelet caps memory through a writable cgroup v1 memory controller (root)")
def test_a_target_over_its_memory_limit_fails_oomkilled_with_the_fix_in_the_message(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-oom")
    storage_secret(kubectl, namespace, s3_server)
    # The worker needs about 66 MB just to import ONNX Runtime: 48Mi is too little, and the
    # kernel kills it inside its memory cgroup, as on a node.
    body = resource("small", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                    storage=storage_spec(s3_server), resources={"gpu": 0, "memory": "48Mi"})
    kubectl.apply(yaml.safe_dump(body))

    done = eventually("Stalled", lambda: settled(kubectl, "small", namespace), timeout=240,
                      explain=explain(kubectl, namespace, operator))

    target = done["status"]["targets"][0]
    assert (target["phase"], target["reason"]) == ("Failed", "OOMKilled"), target
    assert "raise spec.resources.memory" in target["message"]
    assert (condition(done, "Stalled")["reason"], condition(done, "Ready")["status"]) == ("OOMKilled", "False")
    pods = kubectl.json("get", "pods", "-n", namespace)["items"]
    ends = [pod["status"]["containerStatuses"][0]["state"]["terminated"] for pod in pods]
    assert [(end["reason"], end["exitCode"]) for end in ends] == [("OOMKilled", 137)] * 2  # backoffLimit 1: a retry
    assert list(storage.list(parse_uri(f"s3://artifacts/{namespace}/small/"))) == []  # nothing published
    series = (f'kubeopt_optimization_condition{{condition="Stalled",name="small",namespace="{namespace}",'
              'reason="OOMKilled"} 1.0')
    eventually("the Stalled condition series", lambda: series in operator.metrics(), timeout=10,
               explain=operator.tail)


# -- out of time: DeadlineExceeded ---------------------------------------------------------------

def test_a_target_past_its_deadline_fails_deadline_exceeded_with_the_fix_in_the_message(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-late")
    kubelet.hold(namespace)  # the pod never runs: only the Job controller's clock moves
    try:
        body = resource("late", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                        activeDeadlineSeconds=60, backoffLimit=3)
        kubectl.apply(yaml.safe_dump(body))
        job = eventually("the target's Job", lambda: jobs_of(kubectl, namespace),
                         explain=explain(kubectl, namespace, operator))[0]
        assert job["spec"]["activeDeadlineSeconds"] == 60

        done = eventually("Stalled", lambda: settled(kubectl, "late", namespace), timeout=180,
                          explain=explain(kubectl, namespace, operator))
    finally:
        kubelet.release(namespace)

    target = done["status"]["targets"][0]
    assert (target["phase"], target["reason"]) == ("Failed", "DeadlineExceeded"), target
    assert "spec.activeDeadlineSeconds (60s)" in target["message"]
    assert condition(done, "Stalled")["reason"] == "DeadlineExceeded"
    failed = next(c for c in jobs_of(kubectl, namespace)[0]["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"  # the Job controller's verdict, not the operator's guess


# -- f) generations and deletion ---------------------------------------------------------------

def test_spec_change_replaces_old_generation_jobs_and_deletion_collects_them(
        kubectl: Kubectl, operator: OperatorProcess, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-gen")
    body = resource("gen", namespace, [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                    resources={"gpu": 1})  # no node takes it: the Job keeps running
    kubectl.apply(yaml.safe_dump(body))
    old = eventually("the first generation's Job", lambda: jobs_of(kubectl, namespace),
                     explain=explain(kubectl, namespace, operator))[0]["metadata"]["name"]

    kubectl("patch", "mopt", "gen", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"benchmark": {"iterations": 20}}}))

    def replaced() -> list[dict[str, Any]] | None:
        jobs = jobs_of(kubectl, namespace)
        live = [j for j in jobs if not j["metadata"].get("deletionTimestamp")]
        return live if [j["metadata"]["labels"]["kubeopt.io/generation"] for j in live] == ["2"] else None

    new = eventually("only a generation-2 Job", replaced, explain=explain(kubectl, namespace, operator))
    assert new[0]["metadata"]["name"] != old

    def observed() -> dict[str, Any] | None:
        got: dict[str, Any] = kubectl.json("get", "mopt", "gen", "-n", namespace)
        return got if got.get("status", {}).get("observedGeneration") == 2 else None

    status = eventually("status of generation 2", observed)["status"]
    assert [t["jobName"] for t in status["targets"]] == [new[0]["metadata"]["name"]]
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}

    kubectl("delete", "mopt", "gen", "-n", namespace, "--wait=false")

    eventually("the garbage collector to delete the Jobs", lambda: not jobs_of(kubectl, namespace), timeout=90,
               explain=explain(kubectl, namespace))


def test_an_older_operators_finalizer_is_released_and_the_resource_deletes_at_once(
        kubectl: Kubectl, operator: OperatorProcess, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-fin")
    body = resource("legacy", namespace, [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                    resources={"gpu": 1})  # no node takes it: the Job keeps running
    body["metadata"]["finalizers"] = ["kubeopt.io/finalizer"]  # what an operator with a retry daemon left
    kubectl.apply(yaml.safe_dump(body))
    why = explain(kubectl, namespace, operator)

    eventually("the resource's Job", lambda: jobs_of(kubectl, namespace), explain=why)
    released = eventually("the old finalizer removed",
                          lambda: not kubectl.json("get", "mopt", "legacy", "-n", namespace)["metadata"].get(
                              "finalizers"), explain=why)
    kubectl("delete", "mopt", "legacy", "-n", namespace, "--timeout=30s")  # waits until it is gone

    assert released
    assert kubectl("get", "mopt", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_a_foreground_deletion_completes_and_leaves_no_job_behind(
        kubectl: Kubectl, operator: OperatorProcess, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-fg")
    body = resource("fg", namespace, [{"name": "trt", "backend": "tensorrt", "precision": "fp16"},
                                      {"name": "trt2", "backend": "tensorrt", "precision": "fp16"}],
                    resources={"gpu": 1}, parallelism=2)
    kubectl.apply(yaml.safe_dump(body))
    why = explain(kubectl, namespace, operator)

    def both() -> list[dict[str, Any]] | None:
        jobs = jobs_of(kubectl, namespace)
        return jobs if len(jobs) == 2 else None

    first = eventually("both Jobs", both, explain=why)

    # Foreground: the resource stays, with a deletionTimestamp, until the garbage collector has
    # deleted its Jobs; the operator neither holds it (no finalizer) nor creates Jobs for it then
    # (the reconciler skips a resource being deleted: tests/controller/test_reconcile.py).
    kubectl("delete", "mopt", "fg", "-n", namespace, "--cascade=foreground", "--timeout=60s")
    time.sleep(3)  # Job deletions have been watched; a recreated Job would exist by now

    assert {j["metadata"]["uid"] for j in first} and jobs_of(kubectl, namespace) == []
    assert kubectl("get", "mopt", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_a_suspended_resource_starts_no_jobs_until_resumed(kubectl: Kubectl, operator: OperatorProcess,
                                                            crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-suspend")
    body = resource("held", namespace, [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                    resources={"gpu": 1}, suspend=True)
    kubectl.apply(yaml.safe_dump(body))

    def suspended() -> dict[str, Any] | None:
        got: dict[str, Any] = kubectl.json("get", "mopt", "held", "-n", namespace)
        return got if got.get("status", {}).get("phase") == "Suspended" else None

    held = eventually("phase Suspended", suspended, explain=explain(kubectl, namespace, operator))
    assert condition(held, "Ready")["reason"] == "Suspended"
    assert jobs_of(kubectl, namespace) == []

    kubectl("patch", "mopt", "held", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')

    eventually("a Job once resumed", lambda: jobs_of(kubectl, namespace), explain=explain(kubectl, namespace, operator))


def test_suspend_and_parallelism_keep_the_jobs_and_resuming_runs_the_same_jobs_to_completion(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-pause")
    storage_secret(kubectl, namespace, s3_server)
    kubelet.hold(namespace)  # the pods wait, unbound: their Jobs stay active until released
    try:
        body = resource("pause", namespace, [
            {"name": "ort-all", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "all"}},
            {"name": "ort-basic", "backend": "onnxruntime", "onnxruntime": {"graphOptimizationLevel": "basic"}},
        ], storage=storage_spec(s3_server), parallelism=1)
        kubectl.apply(yaml.safe_dump(body))
        why = explain(kubectl, namespace, operator)

        def active(count: int) -> list[dict[str, Any]] | None:
            jobs = jobs_of(kubectl, namespace)
            return jobs if len(jobs) == count and all(j.get("status", {}).get("active") for j in jobs) else None

        first = eventually("the first Job, active", lambda: active(1), explain=why)[0]["metadata"]

        # parallelism 1 -> 2: the running Job is kept and the second target starts beside it.
        kubectl("patch", "mopt", "pause", "-n", namespace, "--type=merge", "-p", '{"spec": {"parallelism": 2}}')
        both = eventually("two active Jobs", lambda: active(2), explain=why)
        uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in both}
        names = [next(j["metadata"]["name"] for j in both if j["metadata"]["labels"]["kubeopt.io/target"] == t)
                 for t in ("ort-all", "ort-basic")]
        assert uids[first["name"]] == first["uid"]

        # suspend: the same Jobs, suspended by the Job controller (no pods), and no new Job.
        kubectl("patch", "mopt", "pause", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')

        def suspended() -> dict[str, Any] | None:
            jobs = jobs_of(kubectl, namespace)
            held = all(j["spec"].get("suspend") is True and not j.get("status", {}).get("active")
                       and condition(j, "Suspended").get("status") == "True" for j in jobs)
            got: dict[str, Any] = kubectl.json("get", "mopt", "pause", "-n", namespace)
            status = got.get("status", {})
            return got if held and status.get("phase") == "Suspended" and status.get("observedGeneration") == 3 \
                and [t.get("reason") for t in status.get("targets", [])] == ["Suspended", "Suspended"] else None

        paused = eventually("both Jobs suspended and phase Suspended", suspended, explain=why)
        assert {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs_of(kubectl, namespace)} == uids
        assert eventually("the suspended Jobs' pods gone",
                          lambda: not kubectl.json("get", "pods", "-n", namespace)["items"], timeout=60,
                          explain=why)
        assert (condition(paused, "Ready")["status"], condition(paused, "Ready")["reason"]) == ("False", "Suspended")
        assert (condition(paused, "Reconciling")["status"],
                condition(paused, "Reconciling")["reason"]) == ("False", "Suspended")
        assert condition(paused, "Stalled")["status"] == "False"
        assert {c["observedGeneration"] for c in paused["status"]["conditions"]} == {3}
        assert [t["jobName"] for t in paused["status"]["targets"]] == names

        # resume: the same Jobs run to completion.
        kubelet.release(namespace)
        kubectl("patch", "mopt", "pause", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
        done = eventually("Ready or Stalled after resuming", lambda: settled(kubectl, "pause", namespace),
                          timeout=300, explain=why)
    finally:
        kubelet.release(namespace)
    assert condition(done, "Ready").get("status") == "True", done.get("status")
    assert done["status"]["observedGeneration"] == 4
    jobs = jobs_of(kubectl, namespace)
    assert {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs} == uids
    assert all(j["status"].get("succeeded") == 1 and j["spec"].get("suspend") is False for j in jobs)
    assert [(t["jobName"], t["phase"]) for t in done["status"]["targets"]] == [(n, "Succeeded") for n in names]
    assert len([r for r in kubelet.finished() if r.namespace == namespace]) == 2


# -- refused: JobRejected ----------------------------------------------------------------------

def test_a_job_the_api_server_refuses_fails_its_target_once_with_the_policys_message(
        kubectl: Kubectl, operator: OperatorProcess, crd: None) -> None:
    namespace = new_namespace(kubectl, "e2e-refused")
    operator.stop()
    try:
        kubectl.apply(yaml.safe_dump(resource("refused", namespace, [{"name": "ort", "backend": "onnxruntime"}])))
        kubectl("label", "namespace", namespace, "kubeopt.io/enabled-")  # opts out before the operator acts
    finally:
        operator.start()

    done = eventually("Stalled", lambda: settled(kubectl, "refused", namespace), timeout=120,
                      explain=explain(kubectl, namespace, operator))

    target = done["status"]["targets"][0]
    assert (target["phase"], target["reason"]) == ("Failed", "JobRejected"), target
    assert "kubeopt-operator-jobs" in target["message"]
    assert f"namespace {namespace} has not opted in to kubeopt" in target["message"]
    assert condition(done, "Stalled")["reason"] == "JobRejected"

    def refusals() -> list[dict[str, Any]]:
        return list(kubectl.json("get", "events", "-n", namespace, "--field-selector=reason=JobRejected")["items"])

    events = eventually("the JobRejected Warning", refusals, timeout=30, explain=operator.tail)
    time.sleep(5)  # a retry storm would show as more attempts, events and errors by now
    assert jobs_of(kubectl, namespace) == []
    assert [(e["type"], e.get("count", 1)) for e in refusals()] == [("Warning", 1)], events
    errors = f'kubeopt_reconcile_errors_total{{namespace="{namespace}"}}'
    assert errors not in operator.metrics()


# -- names of any length: matched by UID -------------------------------------------------------

LONG_NAME = ("a" * 63 + ".") * 3 + "b" * 61  # 253 characters: the longest valid name


def events_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in kubectl.json("get", "events", "-n", namespace,
                                    "--field-selector", "involvedObject.kind=ModelOptimization")["items"]
            if e["involvedObject"]["name"] == name]


def test_a_resource_with_a_253_character_name_becomes_ready_with_its_artifact(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-long")
    storage_secret(kubectl, namespace, s3_server)
    body = resource(LONG_NAME, namespace, [{"name": "ort", "backend": "onnxruntime"}],
                    storage=storage_spec(s3_server))

    kubectl.apply(yaml.safe_dump(body))

    done = eventually("Ready or Stalled", lambda: settled(kubectl, LONG_NAME, namespace), timeout=300,
                      explain=explain(kubectl, namespace, operator))
    assert len(LONG_NAME) == 253
    assert condition(done, "Ready").get("status") == "True", done.get("status")
    target = done["status"]["targets"][0]
    assert target["phase"] == "Succeeded"
    assert verify(storage, parse_uri(target["artifact"]["uri"]))
    [job] = jobs_of(kubectl, namespace)
    assert len(job["metadata"]["name"]) <= 63 and target["jobName"] == job["metadata"]["name"]
    labels = job["metadata"]["labels"]
    assert labels["kubeopt.io/optimization-uid"] == done["metadata"]["uid"]
    assert all(len(value) <= 63 for value in labels.values())


# -- truthful phases ---------------------------------------------------------------------------

def test_a_target_is_pending_while_its_jobs_pod_waits_and_running_only_once_it_runs(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-wait")
    storage_secret(kubectl, namespace, s3_server)
    why = explain(kubectl, namespace, operator)
    kubelet.hold(namespace)  # the pod is created but no node takes it yet
    try:
        kubectl.apply(yaml.safe_dump(resource("wait", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                              storage=storage_spec(s3_server))))
        eventually("the Job, active with an unbound pod",
                   lambda: [j for j in jobs_of(kubectl, namespace) if j.get("status", {}).get("active")], explain=why)

        def seen_active() -> dict[str, Any] | None:  # attempts counts the active pod: the operator saw it
            got: dict[str, Any] = kubectl.json("get", "mopt", "wait", "-n", namespace)
            targets = got.get("status", {}).get("targets") or [{}]
            return targets[0] if targets[0].get("attempts") == 1 else None

        waiting = eventually("the operator to see the active Job", seen_active, explain=why)
        time.sleep(3)  # any later reconcile of the same state would have flipped it by now
        again = kubectl.json("get", "mopt", "wait", "-n", namespace)["status"]["targets"][0]
        pods = kubectl.json("get", "pods", "-n", namespace)["items"]
        running_events = [e for e in events_of(kubectl, namespace, "wait") if e["reason"] == "TargetRunning"]
    finally:
        kubelet.release(namespace)

    assert [p["status"].get("phase") for p in pods] == ["Pending"] and not pods[0]["spec"].get("nodeName")
    assert (waiting["phase"], again["phase"]) == ("Pending", "Pending")
    assert running_events == []
    done = eventually("Ready or Stalled", lambda: settled(kubectl, "wait", namespace), timeout=300, explain=why)
    assert done["status"]["targets"][0]["phase"] == "Succeeded"


# -- a permanent failure is not retried ----------------------------------------------------------

def test_a_bucket_that_does_not_exist_fails_the_job_at_once_and_is_not_retried(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-nobucket")
    storage_secret(kubectl, namespace, s3_server)
    why = explain(kubectl, namespace, operator)
    body = resource("nobucket", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                    storage=storage_spec(s3_server), backoffLimit=3)
    body["spec"]["output"]["uri"] = f"s3://{namespace}-missing/nobucket"  # the model bucket exists, this not
    kubectl.apply(yaml.safe_dump(body))

    done = eventually("Stalled", lambda: settled(kubectl, "nobucket", namespace), timeout=300, explain=why)

    target = done["status"]["targets"][0]
    assert (target["phase"], target["reason"], target["attempts"]) == ("Failed", "StorageMisconfigured", 1), target
    assert f"bucket '{namespace}-missing' not found" in target["message"], target
    assert "check the bucket name" in target["message"], target
    job = jobs_of(kubectl, namespace)[0]
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed" and c["status"] == "True"]
    assert [c["reason"] for c in failed] == ["PodFailurePolicy"], job["status"]
    assert job["status"].get("failed") == 1, job["status"]


# -- the first failure survives a retry ----------------------------------------------------------

def test_the_first_failed_attempts_cause_stays_in_status_after_a_retry_succeeds(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store,
        s3_server: S3Server) -> None:
    namespace = new_namespace(kubectl, "e2e-retry")
    kubectl("create", "secret", "generic", "s3", "-n", namespace, "--from-literal=AWS_ACCESS_KEY_ID=nobody",
            "--from-literal=AWS_SECRET_ACCESS_KEY=not-the-key")  # the first attempt is refused by S3
    why = explain(kubectl, namespace, operator)
    kubectl.apply(yaml.safe_dump(resource("retry", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                          storage=storage_spec(s3_server), backoffLimit=1)))
    eventually("the first attempt's pod, bound to the node",
               lambda: [p for p in kubectl.json("get", "pods", "-n", namespace)["items"] if p["spec"].get("nodeName")],
               explain=why)
    kubelet.hold(namespace)  # the retry's pod waits until the credentials are fixed
    try:
        def first_failure() -> dict[str, Any] | None:
            got: dict[str, Any] = kubectl.json("get", "mopt", "retry", "-n", namespace)
            targets = got.get("status", {}).get("targets") or [{}]
            return targets[0] if targets[0].get("firstFailure") else None

        failing = eventually("the first failure in the status", first_failure, timeout=180, explain=why)
        kubectl("delete", "secret", "s3", "-n", namespace)
        storage_secret(kubectl, namespace, s3_server)
    finally:
        kubelet.release(namespace)

    done = eventually("Ready or Stalled", lambda: settled(kubectl, "retry", namespace), timeout=300, explain=why)
    target = done["status"]["targets"][0]
    assert failing["firstFailure"]["reason"] == "StorageError"
    assert (target["phase"], target["attempts"]) == ("Succeeded", 2), target
    assert target["firstFailure"] == failing["firstFailure"]
    assert "access denied" in target["firstFailure"]["message"]
    assert "storage.secretRef" in target["firstFailure"]["message"]
    assert target["firstFailure"]["time"]


# -- throttling: 429 from the API server, retried in kopf's context -------------------------------

def test_status_writes_refused_with_429_are_retried_after_retry_after_until_ready_with_every_event(
        kubectl: Kubectl, operator: OperatorProcess, operator_account: tuple[Path, str], kubelet: FakeKubelet,
        storage: S3Store, s3_server: S3Server, tmp_path: Path) -> None:
    namespace = new_namespace(kubectl, "e2e-429")
    storage_secret(kubectl, namespace, s3_server)
    why = explain(kubectl, namespace, operator)
    config = f"throttle-{namespace}"
    with ThrottlingWebhook(tmp_path / "webhook", retry_after=2) as webhook:
        webhook.refuse()
        kubectl.apply(yaml.safe_dump(webhook.configuration(config, namespace, operator_account[1],
                                                           "modeloptimizations/status")))
        try:
            started = time.monotonic()
            kubectl.apply(yaml.safe_dump(resource("throttled", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                                  storage=storage_spec(s3_server))))
            eventually("the Job to succeed while every status write is refused",
                       lambda: [j for j in jobs_of(kubectl, namespace) if j.get("status", {}).get("succeeded")],
                       timeout=300, explain=why)
            finished = time.monotonic()
            eventually("a status write refused after the Job finished",
                       lambda: [r for r in webhook.refused() if r.at > finished + 1], timeout=30, explain=why)
            unwritten = kubectl.json("get", "mopt", "throttled", "-n", namespace).get("status")
            refused_while_on = webhook.refused()
        finally:
            webhook.refuse(False)
        throttled_for = time.monotonic() - started
        done = eventually("Ready once writes are accepted", lambda: settled(kubectl, "throttled", namespace),
                          timeout=60, explain=why)
        kubectl("delete", "validatingwebhookconfiguration", config)

    assert unwritten == {"observedGeneration": 0}  # only the CRD's default: nothing got through while refused
    assert condition(done, "Ready").get("status") == "True", done.get("status")
    assert {(r.user, r.name) for r in refused_while_on} == {(operator_account[1], "throttled")}
    # Retries wait the Retry-After (2 s): one retry waiting per resource, at most once per 2 s,
    # plus one attempt per Job or pod change; a hot loop would be far above this.
    assert 2 <= len(refused_while_on) <= throttled_for + 20, (len(refused_while_on), throttled_for)

    def announced() -> list[str] | None:
        reasons = [e["reason"] for e in events_of(kubectl, namespace, "throttled")]
        return reasons if {"JobCreated", "TargetSucceeded", "Succeeded"} <= set(reasons) else None

    reasons = eventually("the transitions' events", announced, timeout=30)
    assert reasons.count("TargetSucceeded") == 1 and reasons.count("JobCreated") == 1
    log = operator.log.read_text(errors="replace")
    assert "could not post event" not in log
    assert "retrying in 2s" in log
    retried = f'kubeopt_reconcile_retries_total{{cause="throttled",namespace="{namespace}"}}'
    assert retried in operator.metrics()
