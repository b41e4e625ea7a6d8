"""The chart's admission policies on a real API server, tried by distinct real identities.

The attack of issue 13: a user allowed only to create ModelOptimizations names another team's
Secret and an image of their choice, and the operator's Job would run that image with the
Secret in its environment. Here the chart's ValidatingAdmissionPolicies (rendered by helm,
applied as they ship) stand between: each identity is a ServiceAccount with its own bound token
(``kubectl create token``), so the API server's authorizer, not a flag, decides who may do what.
The operator's identity is the chart's own ServiceAccount bound to the chart's RBAC; its Jobs
are tried with a server dry run (admission runs in full, nothing is stored).

Every attempt lands in a matrix (user, what they tried, allowed or refused, the server's
message), printed at the end (``pytest -s``) and, with ``KUBEOPT_E2E_WRITE_MATRIX=1``, written to
bench/results/admission_matrix.md (the committed copy is from such a run).
"""

from __future__ import annotations

import copy
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.operator import E2E_WORKER_ENV, admission_policies, service_account_kubeconfig, token_kubeconfig

from kubeopt.api.spec import ModelOptimizationSpec
from kubeopt.controller.jobs import Owner, build_job
from kubeopt.controller.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
MATRIX = ROOT / "bench" / "results" / "admission_matrix.md"
OPT_IN = "kubeopt.io/enabled=true"
DIGEST = "sha256:" + "0123456789abcdef" * 4


# -- the matrix --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    user: str
    tried: str
    allowed: bool
    message: str


@dataclass
class Matrix:
    rows: list[Attempt] = field(default_factory=list)

    def record(self, user: str, tried: str, result: Any) -> Attempt:
        message = " ".join((result.stderr or result.stdout).split())
        attempt = Attempt(user, tried, result.returncode == 0, message)
        self.rows.append(attempt)
        return attempt

    def markdown(self) -> str:
        lines = ["# Admission matrix (e2e/test_admission.py, real kube-apiserver v1.35)", "",
                 "Each user is a ServiceAccount with its own bound token; the operator is the chart's "
                 "ServiceAccount with the chart's RBAC. Jobs are tried with a server dry run.", "",
                 "| user | tried | result | message from the API server |", "|---|---|---|---|"]
        for row in self.rows:
            message = row.message.replace("|", "\\|") if not row.allowed else row.message[:120]
            lines.append(f"| {row.user} | {row.tried} | {'allowed' if row.allowed else 'refused'} | {message} |")
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    table = Matrix()
    yield table
    if table.rows:
        text = table.markdown()
        print("\n" + text)
        if os.environ.get("KUBEOPT_E2E_WRITE_MATRIX") == "1":
            MATRIX.parent.mkdir(parents=True, exist_ok=True)
            MATRIX.write_text(text)


# -- the cluster: CRD, the chart's RBAC and policies, two namespaces, identities -------------------

@dataclass(frozen=True)
class Team:
    namespace: str        # opted in
    elsewhere: str        # not opted in
    alice: Kubectl        # may only create ModelOptimizations (in both namespaces)
    alice_name: str
    operator: Kubectl     # the chart's ServiceAccount
    operator_name: str


def _new_namespace(kubectl: Kubectl, prefix: str, *labels: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    if labels:
        kubectl("label", "namespace", name, *labels)
    return name


def _may_create_optimizations(kubectl: Kubectl, namespace: str, account: str) -> None:
    kubectl("create", "role", "mopt-creator", "-n", namespace, "--verb=create",
            "--resource=modeloptimizations.kubeopt.io")
    kubectl("create", "rolebinding", "mopt-creator", "-n", namespace, "--role=mopt-creator",
            f"--serviceaccount={account}")


@pytest.fixture(scope="module")
def team(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    home = tmp_path_factory.mktemp("identities")
    operator_config, operator_name = service_account_kubeconfig(kubectl, helm_offline, CHART, home / "operator")
    namespace = _new_namespace(kubectl, "team-a", OPT_IN)
    elsewhere = _new_namespace(kubectl, "not-opted-in")
    kubectl("create", "serviceaccount", "alice", "-n", namespace)
    alice_name = f"system:serviceaccount:{namespace}:alice"
    for ns in (namespace, elsewhere):
        _may_create_optimizations(kubectl, ns, f"{namespace}:alice")
    # Another team's storage credentials, in the same namespace.
    kubectl("create", "secret", "generic", "team-b-storage", "-n", namespace,
            "--from-literal=AWS_ACCESS_KEY_ID=team-b", "--from-literal=AWS_SECRET_ACCESS_KEY=not-yours")
    alice = Kubectl(token_kubeconfig(kubectl, "alice", namespace, home / "alice"))
    with admission_policies(kubectl, helm_offline, CHART):
        yield Team(namespace, elsewhere, alice, alice_name, Kubectl(operator_config), operator_name)
    for ns in (namespace, elsewhere):
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def optimization(namespace: str, name: str = "digits", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/digits.onnx", "format": "onnx", "inputs": [{"name": "pixels",
                                                                                  "shape": [-1, 1, 8, 8]}]},
        "targets": [{"name": "ort", "backend": "onnxruntime"}],
        "output": {"uri": f"s3://artifacts/{namespace}/{name}"},
    }
    body.update(spec)
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def create(as_user: Kubectl, manifest: dict[str, Any], dry_run: bool = True) -> Any:
    args = ["create", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return as_user(*args, input=yaml.safe_dump(manifest), check=False)


def short(user: str) -> str:
    return user.rsplit(":", 1)[-1]


def until(probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """RBAC changes reach the authorizer through an informer: retry a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


# -- ModelOptimizations: Secrets ---------------------------------------------------------------

STEAL = {"storage": {"secretRef": {"name": "team-b-storage"}, "endpoint": "http://attacker.example:9000"}}


def test_a_user_who_may_not_get_the_secret_is_refused_at_admission_with_the_reason(
        team: Team, matrix: Matrix) -> None:
    result = create(team.alice, optimization(team.namespace, **STEAL))

    row = matrix.record(short(team.alice_name), "spec.storage.secretRef team-b-storage (no get on it)", result)
    assert not row.allowed
    assert "modeloptimization-references" in row.message
    assert (f"spec.storage.secretRef.name: {team.alice_name} may not get Secret team-b-storage in namespace "
            f"{team.namespace}") in row.message
    assert "resourceNames: [team-b-storage]" in row.message


def test_the_same_user_given_get_on_the_secret_may_name_it(kubectl: Kubectl, team: Team, matrix: Matrix) -> None:
    kubectl("create", "role", "read-team-b-storage", "-n", team.namespace, "--verb=get",
            "--resource=secrets", "--resource-name=team-b-storage")
    kubectl("create", "rolebinding", "read-team-b-storage", "-n", team.namespace, "--role=read-team-b-storage",
            f"--serviceaccount={team.namespace}:alice")

    result = until(lambda: create(team.alice, optimization(team.namespace, "granted", **STEAL), dry_run=False),
                   lambda r: r.returncode == 0)

    row = matrix.record(short(team.alice_name), "spec.storage.secretRef team-b-storage (given get on it)", result)
    assert row.allowed, row.message
    assert kubectl.json("get", "mopt", "granted", "-n", team.namespace)["spec"]["storage"]["secretRef"] == {
        "name": "team-b-storage"}


# -- ModelOptimizations: images ------------------------------------------------------------------

FOREIGN = "docker.io/attacker/miner:latest"


@pytest.mark.parametrize("field_name", ["default", "tensorrt", "tfTrt", "onnxruntime", "torchCompile"])
def test_an_image_outside_the_allowlist_is_refused_in_every_image_field(
        team: Team, matrix: Matrix, field_name: str) -> None:
    result = create(team.alice, optimization(team.namespace, images={field_name: FOREIGN}))

    row = matrix.record(short(team.alice_name), f"spec.images.{field_name} {FOREIGN}", result)
    assert not row.allowed
    assert f"spec.images.{field_name}: {FOREIGN} is not an allowed worker image: use one under ghcr.io/kubeopt/" \
        in row.message


def test_a_registry_that_only_looks_like_the_allowed_prefix_is_refused(team: Team, matrix: Matrix) -> None:
    image = "ghcr.io/kubeopt-evil/worker:0.1.0"

    result = create(team.alice, optimization(team.namespace, images={"default": image}))

    row = matrix.record(short(team.alice_name), f"spec.images.default {image}", result)
    assert not row.allowed and "is not an allowed worker image" in row.message


@pytest.mark.parametrize("image", ["ghcr.io/kubeopt/worker:0.2.0", f"ghcr.io/kubeopt/worker@{DIGEST}",
                                   "kubeopt-worker:e2e"],
                         ids=["allowed-prefix", "allowed-prefix-digest", "chart-worker-image"])
def test_images_under_an_allowed_prefix_or_the_charts_own_pass(team: Team, matrix: Matrix, image: str) -> None:
    result = create(team.alice, optimization(team.namespace, images={"default": image, "tensorrt": image}))

    row = matrix.record(short(team.alice_name), f"spec.images.default and .tensorrt {image}", result)
    assert row.allowed, row.message


# -- ModelOptimizations: namespaces ----------------------------------------------------------------

def test_a_namespace_that_did_not_opt_in_is_refused_with_how_to_opt_in(team: Team, matrix: Matrix) -> None:
    result = create(team.alice, optimization(team.elsewhere))

    row = matrix.record(short(team.alice_name), f"a ModelOptimization in {team.elsewhere} (no opt-in label)", result)
    assert not row.allowed
    assert (f"namespace {team.elsewhere} has not opted in to kubeopt: label it with kubectl label namespace "
            f"{team.elsewhere} kubeopt.io/enabled=true") in row.message


def test_the_operator_may_patch_annotations_and_status_where_a_spec_change_would_be_refused(
        kubectl: Kubectl, team: Team, matrix: Matrix) -> None:
    namespace = _new_namespace(kubectl, "opted-out-later", OPT_IN)
    try:
        kubectl.apply(yaml.safe_dump(optimization(namespace, "kept")))
        kubectl("label", "namespace", namespace, "kubeopt.io/enabled-")  # the namespace opts out

        annotated = team.operator("annotate", "mopt", "kept", "-n", namespace, "kubeopt.io/last-handled=x",
                                  check=False)
        status = team.operator("patch", "mopt", "kept", "-n", namespace, "--subresource=status", "--type=merge",
                               "-p", '{"status": {"phase": "Pending"}}', check=False)
        changed = kubectl("patch", "mopt", "kept", "-n", namespace, "--type=merge",
                          "-p", '{"spec": {"parallelism": 2}}', check=False)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    rows = [matrix.record(short(team.operator_name), "annotate a resource in a namespace that opted out", annotated),
            matrix.record(short(team.operator_name), "patch its status there", status),
            matrix.record("admin", "change its spec there", changed)]
    assert rows[0].allowed, rows[0].message
    assert rows[1].allowed, rows[1].message
    assert not rows[2].allowed and "has not opted in" in rows[2].message


# -- the operator's Jobs -------------------------------------------------------------------------

def built_job(namespace: str) -> dict[str, Any]:
    """The Job ``kubeopt.controller.jobs.build_job`` makes with the e2e operator's settings."""
    spec = optimization(namespace, storage={"secretRef": {"name": "team-b-storage"}})["spec"]
    owner = Owner(name="digits", namespace=namespace, uid="6f1c2b1e-0d7a-4c55-9a3e-2f0b8c1d4e5a", generation=1,
                  spec=spec)
    parsed = ModelOptimizationSpec.model_validate(spec)
    return build_job(owner, parsed, parsed.targets[0], OperatorSettings.from_env(E2E_WORKER_ENV))


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _as_account(job: dict[str, Any]) -> None:
    _pod(job)["serviceAccountName"] = "namespace-controller"


def _host_path(job: dict[str, Any]) -> None:
    _pod(job)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    _pod(job)["containers"][0]["volumeMounts"].append({"name": "host", "mountPath": "/host"})


def _privileged(job: dict[str, Any]) -> None:
    context = _pod(job)["containers"][0]["securityContext"]
    del context["allowPrivilegeEscalation"]  # the API refuses privileged with escalation off
    context["privileged"] = True


def _capability(job: dict[str, Any]) -> None:
    _pod(job)["containers"][0]["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]


def _foreign_image(job: dict[str, Any]) -> None:
    _pod(job)["containers"][0]["image"] = FOREIGN


def _token(job: dict[str, Any]) -> None:
    _pod(job)["automountServiceAccountToken"] = True


def _host_network(job: dict[str, Any]) -> None:
    _pod(job)["hostNetwork"] = True


BAD_JOBS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("another ServiceAccount (namespace-controller)", _as_account,
     "spec.template.spec.serviceAccountName: namespace-controller: kubeopt Jobs run only under the worker "
     "ServiceAccount kubeopt-worker"),
    ("a hostPath volume", _host_path, "spec.template.spec.volumes: host: kubeopt Jobs mount only emptyDir volumes"),
    ("a privileged container", _privileged, "spec.template.spec.containers: worker must set"),
    ("an added capability (SYS_ADMIN)", _capability, "may not be privileged or add capabilities"),
    (f"a foreign image ({FOREIGN})", _foreign_image,
     f"spec.template.spec.containers[*].image: {FOREIGN} not under an allowed prefix"),
    ("a mounted API token", _token, "spec.template.spec.automountServiceAccountToken must be false"),
    ("hostNetwork", _host_network, "kubeopt Jobs use no hostNetwork"),
]


def test_the_job_the_builder_makes_is_admitted_for_the_operator(team: Team, matrix: Matrix) -> None:
    result = create(team.operator, built_job(team.namespace))

    row = matrix.record(short(team.operator_name), f"the Job build_job makes, in {team.namespace}", result)
    assert row.allowed, row.message


@pytest.mark.parametrize(("tried", "change", "message"), BAD_JOBS, ids=[case[0] for case in BAD_JOBS])
def test_the_operator_may_not_create_a_job_outside_kubeopts_shape(
        team: Team, matrix: Matrix, tried: str, change: Callable[[dict[str, Any]], None], message: str) -> None:
    job = copy.deepcopy(built_job(team.namespace))
    change(job)

    result = create(team.operator, job)

    row = matrix.record(short(team.operator_name), f"a Job with {tried}", result)
    assert not row.allowed
    assert "operator-jobs" in row.message and message in row.message, row.message


def test_the_operator_may_not_create_the_issues_job_in_kube_system(team: Team, matrix: Matrix) -> None:
    job = built_job("kube-system")
    _as_account(job)

    result = create(team.operator, job)

    row = matrix.record(short(team.operator_name), "a Job in kube-system as namespace-controller with a Secret",
                        result)
    assert not row.allowed
    assert "namespace kube-system has not opted in to kubeopt" in row.message


def test_the_jobs_policy_binds_only_the_operator(kubectl: Kubectl, team: Team, matrix: Matrix) -> None:
    job = built_job(team.namespace)
    _as_account(job)

    result = create(kubectl, job)

    row = matrix.record("admin", "a Job as namespace-controller (the policy binds only the operator)", result)
    assert row.allowed, row.message


# -- the chart's values ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    ("replicaCount=2", "at '/peering/enabled': value must be true"),
    ("replicaCount=4,peering.enabled=true", "at '/replicaCount': maximum: got 4, want 3"),
    ("admission.allowedImagePrefixes={ghcr.io/kubeopt}", "at '/admission/allowedImagePrefixes/0': 'ghcr.io/kubeopt'"),
], ids=["two-replicas-without-peering", "four-replicas", "a-prefix-that-would-match-other-registries"])
def test_the_values_schema_refuses_unsafe_values_with_a_message(helm_offline: Helm, value: str, message: str) -> None:
    result = helm_offline("template", "kubeopt", str(CHART), "--set", value, check=False)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_with_watch_namespaces_the_policies_accept_only_those_and_rbac_is_bound_only_there(
        helm_offline: Helm) -> None:
    rendered = helm_offline("template", "kubeopt", str(CHART), "--namespace", "kubeopt-system",
                            "--set", "watchNamespaces={ml-a,ml-b}").stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]

    policies = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"]
    served = [v["expression"] for p in policies for v in p["spec"]["variables"] if v["name"] == "namespaceServed"]
    bindings = {(d["kind"], d["metadata"].get("namespace")) for d in documents
                if d["kind"] in ("RoleBinding", "ClusterRoleBinding") and d["roleRef"]["name"].endswith("-operator")}
    assert len(policies) == 2
    assert served == ['request.namespace in ["ml-a","ml-b"]'] * 2
    assert bindings == {("RoleBinding", "ml-a"), ("RoleBinding", "ml-b")}


def test_admission_can_be_turned_off(helm_offline: Helm) -> None:
    rendered = helm_offline("template", "kubeopt", str(CHART), "--set", "admission.enabled=false").stdout

    assert "ValidatingAdmissionPolicy" not in rendered
