# ruff: noqa: F811  (test_operator's fixtures, imported below, are parameters here by their names)
"""GitOps tools read a ModelOptimization as the operator means it: kstatus and Argo CD agree with us.

kstatus (``sigs.k8s.io/cli-utils/pkg/kstatus``) is what kpt, Config Sync and Flux's health checks
use to decide whether an applied object is reconciled; e2e/kstatus runs its ``status.Compute`` on
objects read from the real API server. The same objects go through the chart's Argo CD
``health.lua`` under gopher-lua (e2e/argocd-health). At each phase the operator (from its image)
drives a real resource through, the three must say the same thing:

| phase | our conditions | kstatus | Argo CD |
|---|---|---|---|
| created, not yet seen by the operator | no conditions, observedGeneration 0 | InProgress | Progressing |
| Jobs running | Reconciling=True | InProgress | Progressing |
| finished, a target succeeded | Ready=True | Current ("Resource is Ready") | Healthy |
| finished, every target failed | Stalled=True | Failed | Degraded |
| spec changed, operator not caught up | observedGeneration < generation | InProgress | Progressing |
| suspended | Ready=False, Reconciling=False (Suspended) | InProgress (our message) | Suspended |

kstatus has no "suspended": cli-utils v0.37.2 reads Ready=False on a custom resource as
InProgress, with our condition's message (which names the suspension), so a tool that waits on
kstatus keeps waiting for a suspended resource until it is resumed; Argo CD shows it Suspended.

The GitOps examples in examples/gitops/ are then checked by server-side dry-run against the real
Argo CD and Flux CRDs, which e2e/kstatus/build.sh took from those projects' Go modules.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeopt_e2e import S3Server
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.kubelet import FakeKubelet
from kubeopt_e2e.operator import OperatorProcess
from test_operator import (  # noqa: F401  (the fixtures are used by name)
    CHART,
    ROOT,
    condition,
    crd,
    eventually,
    explain,
    kubelet,
    monkeypatch_module,
    new_namespace,
    operator,
    operator_account,
    policies,
    resource,
    settled,
    storage,
    storage_secret,
    storage_spec,
)

from kubeopt.storage.store import S3Store

KSTATUS_BUILD = ROOT / "e2e" / "kstatus" / "build.sh"
ARGOCD_BUILD = ROOT / "e2e" / "argocd-health" / "build.sh"
HEALTH_LUA = CHART / "argocd" / "kubeopt.io" / "ModelOptimization" / "health.lua"
GITOPS = ROOT / "examples" / "gitops"
NO_NODE_FITS = {"gpu": 1}  # the fake kubelet's node has no GPU: such a Job stays active


def _built(script: Path) -> Path:
    """The last stdout line of a cached e2e build script (instant once `make e2e-tools` ran)."""
    built = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, f"{script} failed:\n{built.stderr}"
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gitops_tools() -> Path:
    """The directory with the kstatus binary and crds/ (Argo CD's and Flux's CRDs)."""
    return _built(KSTATUS_BUILD)


@pytest.fixture(scope="module")
def argocd_health() -> Path:
    return _built(ARGOCD_BUILD)


def kstatus(tools: Path, *objects: dict[str, Any]) -> list[tuple[str, str]]:
    """(status, message) that cli-utils' status.Compute gives each object."""
    lines = "".join(json.dumps(o) + "\n" for o in objects)
    ran = subprocess.run([str(tools / "kstatus")], input=lines, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    results = [json.loads(line) for line in ran.stdout.splitlines()]
    return [(r["status"], r["message"]) for r in results]


def argocd(runner: Path, work: Path, body: dict[str, Any], status: str, message: str) -> str:
    """Runs health.lua on ``body`` as Argo CD does and fails unless it says (status, message)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "health.lua").write_bytes(HEALTH_LUA.read_bytes())
    (work / "object.yaml").write_text(json.dumps(body))
    (work / "health_test.yaml").write_text(yaml.safe_dump({"tests": [
        {"healthStatus": {"status": status, "message": message}, "inputPath": "object.yaml"}]}))
    ran = subprocess.run([str(runner), str(work)], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, f"Argo CD's health disagrees:\n{ran.stdout}{ran.stderr}"
    return ran.stdout


def get(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    got: dict[str, Any] = kubectl.json("get", "mopt", name, "-n", namespace)
    return got


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = new_namespace(kubectl, "e2e-gitops")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- kstatus and Argo CD at each phase --------------------------------------------------------

def test_a_resource_the_operator_has_not_seen_yet_is_in_progress_not_current(
        kubectl: Kubectl, operator: OperatorProcess, gitops_tools: Path, argocd_health: Path, namespace: str,
        tmp_path: Path) -> None:
    operator.stop()
    try:
        kubectl.apply(yaml.safe_dump(resource("fresh", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                              resources=NO_NODE_FITS)))
        fresh = get(kubectl, "fresh", namespace)
    finally:
        operator.start()

    assert fresh["metadata"]["generation"] == 1
    assert not fresh.get("status", {}).get("conditions")
    assert kstatus(gitops_tools, fresh) == [
        ("InProgress", "ModelOptimization generation is 1, but latest observed generation is 0")]
    argocd(argocd_health, tmp_path, fresh, "Progressing", "Waiting for the kubeopt operator to report a status")


def test_a_resource_whose_jobs_run_is_in_progress_for_kstatus_and_progressing_for_argo_cd(
        kubectl: Kubectl, operator: OperatorProcess, gitops_tools: Path, argocd_health: Path, namespace: str,
        tmp_path: Path) -> None:
    kubectl.apply(yaml.safe_dump(resource("running", namespace, [{"name": "trt", "backend": "tensorrt",
                                                                   "precision": "fp16"}], resources=NO_NODE_FITS)))

    def reconciling() -> dict[str, Any] | None:
        got = get(kubectl, "running", namespace)
        return got if condition(got, "Reconciling").get("status") == "True" else None

    running = eventually("Reconciling=True", reconciling, explain=explain(kubectl, namespace, operator))

    message = condition(running, "Reconciling")["message"]
    assert (condition(running, "Ready")["status"], condition(running, "Stalled")["status"]) == ("False", "False")
    assert kstatus(gitops_tools, running) == [("InProgress", message)]
    argocd(argocd_health, tmp_path, running, "Progressing", message)


def test_a_resource_whose_every_target_failed_is_failed_for_kstatus_and_degraded_for_argo_cd(
        kubectl: Kubectl, operator: OperatorProcess, gitops_tools: Path, argocd_health: Path, namespace: str,
        tmp_path: Path) -> None:
    operator.stop()
    try:
        kubectl.apply(yaml.safe_dump(resource("refused", namespace, [{"name": "ort", "backend": "onnxruntime"}])))
        kubectl("label", "namespace", namespace, "kubeopt.io/enabled-")  # the chart's policy refuses its Jobs
    finally:
        operator.start()

    failed = eventually("Stalled", lambda: settled(kubectl, "refused", namespace),
                        explain=explain(kubectl, namespace, operator))

    stalled = condition(failed, "Stalled")
    assert (stalled["status"], stalled["reason"], condition(failed, "Ready")["status"]) == ("True", "JobRejected",
                                                                                             "False")
    assert kstatus(gitops_tools, failed) == [("Failed", stalled["message"])]
    argocd(argocd_health, tmp_path, failed, "Degraded", f"JobRejected: {stalled['message']}")


def test_a_suspended_resource_is_in_progress_for_kstatus_and_suspended_for_argo_cd(
        kubectl: Kubectl, operator: OperatorProcess, gitops_tools: Path, argocd_health: Path, namespace: str,
        tmp_path: Path) -> None:
    kubectl.apply(yaml.safe_dump(resource("held", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                          resources=NO_NODE_FITS, suspend=True)))

    def suspended() -> dict[str, Any] | None:
        got = get(kubectl, "held", namespace)
        return got if got.get("status", {}).get("phase") == "Suspended" else None

    held = eventually("phase Suspended", suspended, explain=explain(kubectl, namespace, operator))

    ready = condition(held, "Ready")
    assert (ready["status"], ready["reason"], condition(held, "Reconciling")["status"]) == ("False", "Suspended",
                                                                                            "False")
    assert kstatus(gitops_tools, held) == [("InProgress", ready["message"])]
    argocd(argocd_health, tmp_path, held, "Suspended", ready["message"])


def test_a_finished_resource_is_current_and_a_spec_change_in_progress_until_the_operator_observes_it(
        kubectl: Kubectl, operator: OperatorProcess, kubelet: FakeKubelet, storage: S3Store, s3_server: S3Server,
        gitops_tools: Path, argocd_health: Path, namespace: str, tmp_path: Path) -> None:
    storage_secret(kubectl, namespace, s3_server)
    why = explain(kubectl, namespace, operator)
    kubectl.apply(yaml.safe_dump(resource("digits", namespace, [{"name": "ort", "backend": "onnxruntime"}],
                                          storage=storage_spec(s3_server))))

    ready = eventually("Ready", lambda: settled(kubectl, "digits", namespace), timeout=300, explain=why)

    assert condition(ready, "Ready")["status"] == "True", ready["status"]
    assert kstatus(gitops_tools, ready) == [("Current", "Resource is Ready")]
    argocd(argocd_health, tmp_path / "ready", ready, "Healthy", condition(ready, "Ready")["message"])

    operator.stop()
    try:
        kubectl("patch", "mopt", "digits", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"benchmark": {"iterations": 12}}}))
        stale = get(kubectl, "digits", namespace)
    finally:
        operator.start()

    assert (stale["metadata"]["generation"], stale["status"]["observedGeneration"]) == (2, 1)
    assert condition(stale, "Ready")["status"] == "True"  # what it says is about generation 1
    assert kstatus(gitops_tools, stale) == [
        ("InProgress", "ModelOptimization generation is 2, but latest observed generation is 1")]
    argocd(argocd_health, tmp_path / "stale", stale, "Progressing",
           "Waiting for the kubeopt operator to observe generation 2 (status describes generation 1)")

    again = eventually("Ready for generation 2", lambda: settled(kubectl, "digits", namespace), timeout=300,
                       explain=why)

    assert condition(again, "Ready")["observedGeneration"] == 2
    assert kstatus(gitops_tools, again) == [("Current", "Resource is Ready")]


# -- the GitOps examples, dry-run against Argo CD's and Flux's own CRDs ------------------------

EXAMPLES = ["argocd-application.yaml", "flux-helmrelease.yaml", "flux-kustomization.yaml"]
#: (example, document index, path to a mapping, a key that is misspelt there, its right value):
#: each must be refused by the API server, naming the field.
TYPOS = [
    ("argocd-application.yaml", 0, ("spec", "syncPolicy", "automated"), "prun", True),
    ("flux-helmrelease.yaml", 0, ("spec", "ref"), "branchh", "main"),
    ("flux-helmrelease.yaml", 1, ("spec", "install"), "crd", "CreateReplace"),
    ("flux-kustomization.yaml", 0, ("spec",), "prunee", True),
]


def established(kubectl: Kubectl, name: str, timeout: float = 60.0) -> bool:
    def ready() -> bool:
        waited = kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=5s", check=False)
        return waited.returncode == 0
    return eventually(f"CRD {name} Established", ready, timeout=timeout)


@pytest.fixture(scope="module")
def gitops_crds(kubectl: Kubectl, gitops_tools: Path) -> list[str]:
    """Argo CD's and Flux's CRDs installed (server-side: Argo CD's Application CRD is larger than a
    last-applied annotation may be), and the namespaces the examples name."""
    names = []
    for path in sorted((gitops_tools / "crds").glob("*.yaml")):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        names.append(yaml.safe_load(path.read_text())["metadata"]["name"])
    for name in names:
        established(kubectl, name)
    for namespace in ("argocd", "flux-system"):
        kubectl("create", "namespace", namespace, check=False)
    return names


def dry_run(kubectl: Kubectl, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest, check=False)


def test_argo_cd_and_flux_crds_come_from_their_projects_modules(gitops_crds: list[str]) -> None:
    assert set(gitops_crds) == {"applications.argoproj.io", "appprojects.argoproj.io",
                                "gitrepositories.source.toolkit.fluxcd.io", "helmrepositories.source.toolkit.fluxcd.io",
                                "helmreleases.helm.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"}


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_gitops_example_passes_a_server_side_dry_run_against_the_real_crds(
        kubectl: Kubectl, gitops_crds: list[str], example: str) -> None:
    text = (GITOPS / example).read_text()

    ran = dry_run(kubectl, text)

    assert ran.returncode == 0, ran.stderr
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert ran.stdout.count("serverside-applied (server dry run)") == len(documents), ran.stdout


@pytest.mark.parametrize(("example", "index", "path", "typo", "value"), TYPOS,
                         ids=[f"{t[0]}:{'.'.join(t[2])}.{t[3]}" for t in TYPOS])
def test_a_misspelt_field_in_an_example_is_refused_by_the_api_server(
        kubectl: Kubectl, gitops_crds: list[str], example: str, index: int, path: tuple[str, ...], typo: str,
        value: Any) -> None:
    documents = [d for d in yaml.safe_load_all((GITOPS / example).read_text()) if d]
    node = documents[index]
    for key in path:
        node = node[key]
    node[typo] = value

    ran = dry_run(kubectl, yaml.safe_dump(documents[index]))

    assert ran.returncode != 0, ran.stdout
    assert f".{'.'.join(path)}.{typo}: field not declared in schema" in ran.stderr, ran.stderr


def test_a_wrong_crd_upgrade_policy_in_the_helmrelease_is_refused_with_the_allowed_values(
        kubectl: Kubectl, gitops_crds: list[str]) -> None:
    release = [d for d in yaml.safe_load_all((GITOPS / "flux-helmrelease.yaml").read_text()) if d][1]
    release["spec"]["upgrade"]["crds"] = "Replace"

    ran = dry_run(kubectl, yaml.safe_dump(release))

    assert ran.returncode != 0, ran.stdout
    assert 'spec.upgrade.crds: Unsupported value: "Replace"' in ran.stderr, ran.stderr
    assert '"CreateReplace"' in ran.stderr


def test_the_examples_install_the_chart_with_crds_create_replace_from_paths_in_this_repository() -> None:
    argo = [d for d in yaml.safe_load_all((GITOPS / "argocd-application.yaml").read_text()) if d]
    flux = [d for d in yaml.safe_load_all((GITOPS / "flux-helmrelease.yaml").read_text()) if d]
    kustomization = yaml.safe_load((GITOPS / "flux-kustomization.yaml").read_text())
    release = flux[1]["spec"]

    assert (release["install"]["crds"], release["upgrade"]["crds"]) == ("CreateReplace", "CreateReplace")
    assert "ServerSideApply=true" in argo[0]["spec"]["syncPolicy"]["syncOptions"]
    paths = [a["spec"]["source"]["path"] for a in argo] + [release["chart"]["spec"]["chart"],
                                                          kustomization["spec"]["path"]]
    assert all((ROOT / p).is_dir() for p in paths), paths
    assert (ROOT / release["chart"]["spec"]["chart"]).resolve() == CHART.resolve()


def chart_values(document: dict[str, Any]) -> dict[str, Any] | None:
    """The chart values an Argo CD Application or a Flux HelmRelease sets, if it installs a chart."""
    if document["kind"] == "HelmRelease":
        return dict(document["spec"]["values"])
    helm = document["spec"].get("source", {}).get("helm") if document["kind"] == "Application" else None
    return dict(helm["valuesObject"]) if helm else None


@pytest.mark.parametrize("example", ["argocd-application.yaml", "flux-helmrelease.yaml"])
def test_the_chart_values_an_example_sets_pass_the_charts_values_schema(
        helm_offline: Helm, example: str, tmp_path: Path) -> None:
    documents = [d for d in yaml.safe_load_all((GITOPS / example).read_text()) if d]
    (values,) = [v for v in map(chart_values, documents) if v is not None]
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))

    rendered = helm_offline("template", "kubeopt", str(CHART), "--namespace", "kubeopt",
                            "-f", str(tmp_path / "values.yaml"))

    assert "kind: Deployment" in rendered.stdout


def test_the_models_an_example_syncs_are_admitted_by_the_kubeopt_crd_and_policies(
        kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("apply", "--server-side", "-f", str(GITOPS / "models" / "namespace.yaml"))

    ran = dry_run(kubectl, (GITOPS / "models" / "digits.yaml").read_text())

    assert ran.returncode == 0, ran.stderr
