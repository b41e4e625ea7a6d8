"""The chart's values: what ``helm template`` refuses (values.schema.json) and what the settings render.

The bad-values table is the contract a platform team relies on: a typo or a wrong type stops
``helm install`` with the field's path instead of rendering something that fails later. The
rendered Deployment's environment is read by the operator's own ``OperatorSettings.from_env``
and a Job is built from it, so a chart value reaches the worker pod the way it does in a cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeopt.api.spec import ModelOptimizationSpec
from kubeopt.controller.jobs import Owner, build_job
from kubeopt.controller.settings import OperatorSettings
from tests.chart.helm import Renderer

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-as-a-word", {"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
    ("two-replicas-without-peering", {"replicaCount": 2}, "at '/peering/enabled': value must be true"),
    ("a-top-level-typo", {"replicas": 2}, "additional properties 'replicas' not allowed"),
    ("port-as-a-word", {"metricsPort": "abc"}, "at '/metricsPort': got string, want integer"),
    ("a-privileged-port", {"metricsPort": 80}, "at '/metricsPort': minimum"),
    ("an-unknown-pull-policy", {"image": {"pullPolicy": "Sometimes"}},
     "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ("servicemonitor-enable-typo", {"serviceMonitor": {"enable": True}},
     "at '/serviceMonitor': additional properties 'enable' not allowed"),
    ("servicemonitor-interval-in-words", {"serviceMonitor": {"interval": "30 seconds"}},
     "at '/serviceMonitor/interval'"),
    ("dashboard-enable-typo", {"grafanaDashboard": {"enable": True}},
     "at '/grafanaDashboard': additional properties 'enable' not allowed"),
    ("no-operator-account-and-no-name", {"serviceAccount": {"create": False}},
     "at '/serviceAccount/name': minLength: got 0, want 1"),
    ("operator-account-annotation-not-a-string", {"serviceAccount": {"annotations": {"a": 1}}},
     "at '/serviceAccount/annotations/a': got number, want string"),
    ("worker-account-created-by-the-chart-cluster-wide", {"workerServiceAccount": {"createdBy": "chart"}},
     "at '/watchNamespaces'"),
    ("worker-account-created-by-an-unknown-party", {"workerServiceAccount": {"createdBy": "helm"}},
     "at '/workerServiceAccount/createdBy': value must be one of 'operator', 'chart', 'none'"),
    ("worker-account-name-not-a-dns-name", {"workerServiceAccount": {"name": "Worker_SA"}},
     "at '/workerServiceAccount/name'"),
    ("job-env-from-a-secret", {"jobs": {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}},
     "at '/jobs/env/0': additional properties 'valueFrom' not allowed"),
    ("job-env-that-the-spec-sets", {"jobs": {"env": [{"name": "AWS_REGION", "value": "eu-west-1"}]}},
     "at '/jobs/env/0/name'"),
    ("job-env-name-not-an-identifier", {"jobs": {"env": [{"name": "1X", "value": "a"}]}},
     "at '/jobs/env/0/name'"),
    ("job-annotation-not-a-string", {"jobs": {"podAnnotations": {"sidecar.istio.io/inject": False}}},
     "got boolean, want string"),
    ("job-priority-class-with-spaces", {"jobs": {"priorityClassName": "High Priority"}},
     "at '/jobs/priorityClassName'"),
    ("pull-secrets-as-plain-names", {"imagePullSecrets": ["regcred"]},
     "at '/imagePullSecrets/0': got string, want object"),
    ("operator-priority-class-with-spaces", {"priorityClassName": "High Priority"}, "at '/priorityClassName'"),
    ("memory-in-gigabytes-not-a-quantity", {"resources": {"limits": {"memory": "16GB"}}},
     "at '/resources/limits/memory'"),
    ("resources-typo", {"resources": {"limit": {"memory": "1Gi"}}},
     "at '/resources': additional properties 'limit' not allowed"),
    ("tolerations-as-a-map", {"tolerations": {"key": "gpu"}}, "at '/tolerations': got object, want array"),
    ("image-prefix-without-a-separator", {"admission": {"allowedImagePrefixes": ["ghcr.io/kubeopt"]}},
     "at '/admission/allowedImagePrefixes/0'"),
    ("namespace-in-capitals", {"watchNamespaces": ["ML"]}, "at '/watchNamespaces/0'"),
    ("peering-lifetime-of-one-second", {"peering": {"enabled": True, "lifetime": 1}}, "at '/peering/lifetime'"),
    ("liveness-timeout-of-a-second", {"livenessTimeoutSeconds": 1}, "at '/livenessTimeoutSeconds': minimum"),
    ("no-default-worker-image", {"workerImages": {"default": ""}}, "at '/workerImages/default'"),
]


@pytest.mark.parametrize(("values", "error"), [(v, e) for _, v, e in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES])
def test_helm_template_refuses_bad_values_with_the_fields_path(render: Renderer, values: dict[str, Any],
                                                              error: str) -> None:
    refusal = render.refusal(values)

    assert "values don't meet the specifications of the schema" in refusal
    assert error in refusal


def test_a_word_for_the_replica_count_is_refused_for_its_type_alone(render: Renderer) -> None:
    refusal = render.refusal({"replicaCount": "two"})

    assert "/peering" not in refusal  # the peering rule applies to numbers of replicas only


def test_the_defaults_render(render: Renderer) -> None:
    kinds = {d["kind"] for d in render.documents({})}

    assert {"Deployment", "ServiceAccount", "ClusterRole", "ValidatingAdmissionPolicy"} <= kinds


def test_without_schema_validation_a_missing_operator_account_name_still_stops_the_render(render: Renderer) -> None:
    proc = render.run({"serviceAccount": {"create": False}}, "--skip-schema-validation")

    assert proc.returncode != 0
    assert "serviceAccount.name: with serviceAccount.create=false, name the existing ServiceAccount" in proc.stderr


def _of(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def test_an_existing_operator_account_is_bound_instead_of_the_namespaces_default(render: Renderer) -> None:
    documents = render.documents({"serviceAccount": {"create": False, "name": "platform-kubeopt"}})

    assert not [d for d in _of(documents, "ServiceAccount") if d["metadata"]["namespace"] == "kubeopt"]
    deployment = _of(documents, "Deployment")[0]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "platform-kubeopt"
    subjects = [s for b in _of(documents, "ClusterRoleBinding") for s in b["subjects"]]
    assert subjects and {s["name"] for s in subjects} == {"platform-kubeopt"}


def _settings(documents: list[dict[str, Any]]) -> OperatorSettings:
    """The settings the operator reads from the rendered Deployment's environment."""
    container = _of(documents, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    return OperatorSettings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})


def _job_pod(settings: OperatorSettings) -> dict[str, Any]:
    wire = {
        "model": {"uri": "s3://models/m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 4]}]},
        "targets": [{"name": "ort", "backend": "onnxruntime", "precision": "fp32"}],
        "output": {"uri": "s3://out/m/"},
    }
    spec = ModelOptimizationSpec.model_validate(wire)
    owner = Owner(name="m", namespace="ml", uid="u-1", generation=1, spec=wire)
    return build_job(owner, spec, spec.targets[0], settings)["spec"]["template"]


def test_job_pod_settings_reach_the_workers_pod(render: Renderer) -> None:
    documents = render.documents({
        "imagePullSecrets": [{"name": "regcred"}],
        "jobs": {"podAnnotations": {"sidecar.istio.io/inject": "false"}, "priorityClassName": "batch-low",
                 "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}]},
    })

    template = _job_pod(_settings(documents))

    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["spec"]["priorityClassName"] == "batch-low"
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in template["spec"]["containers"][0]["env"]


def test_the_operators_pod_gets_its_annotations_priority_class_and_pull_secrets(render: Renderer) -> None:
    documents = render.documents({"podAnnotations": {"team": "ml-platform"}, "priorityClassName": "platform",
                                  "imagePullSecrets": [{"name": "regcred"}]})

    template = _of(documents, "Deployment")[0]["spec"]["template"]

    assert template["metadata"]["annotations"] == {"team": "ml-platform"}
    assert template["spec"]["priorityClassName"] == "platform"
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_by_default_the_operator_creates_the_worker_account_with_its_annotations(render: Renderer) -> None:
    role_arn = "arn:aws:iam::111122223333:role/kubeopt-worker"
    documents = render.documents({"workerServiceAccount": {"annotations": {"eks.amazonaws.com/role-arn": role_arn}}})

    settings = _settings(documents)
    rules = _of(documents, "ClusterRole")
    account_rules = [r for role in rules for r in role["rules"] if "serviceaccounts" in r["resources"]]

    assert settings.worker_pod.create_service_account
    assert settings.worker_pod.service_account_annotations == {"eks.amazonaws.com/role-arn": role_arn}
    assert {v for r in account_rules for v in r["verbs"]} == {"create", "get", "patch"}


def test_the_chart_can_create_the_worker_account_in_each_namespace_instead(render: Renderer) -> None:
    documents = render.documents({
        "watchNamespaces": ["ml", "cv"],
        "workerServiceAccount": {"name": "ml-worker", "createdBy": "chart",
                                 "annotations": {"iam.gke.io/gcp-service-account": "w@p.iam.gserviceaccount.com"}},
    })

    workers = [d for d in _of(documents, "ServiceAccount") if d["metadata"]["name"] == "ml-worker"]
    rules = [r for role in _of(documents, "ClusterRole") for r in role["rules"]]
    policy = next(d for d in _of(documents, "ValidatingAdmissionPolicy") if d["metadata"]["name"].endswith("-jobs"))

    assert sorted(w["metadata"]["namespace"] for w in workers) == ["cv", "ml"]
    assert all(w["automountServiceAccountToken"] is False for w in workers)
    assert all(w["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "w@p.iam.gserviceaccount.com"}
               for w in workers)
    assert not [r for r in rules if "serviceaccounts" in r["resources"]]  # the operator writes no account
    assert not _settings(documents).worker_pod.create_service_account
    assert _settings(documents).worker_service_account == "ml-worker"
    assert any('variables.account == \\"ml-worker\\"' in v["expression"] or 'variables.account == "ml-worker"'
               in v["expression"] for v in policy["spec"]["validations"])


def test_the_service_monitor_keeps_the_resources_namespace_label(render: Renderer) -> None:
    documents = render.documents({"serviceMonitor": {"enabled": True}})

    endpoint = _of(documents, "ServiceMonitor")[0]["spec"]["endpoints"][0]

    assert endpoint["honorLabels"] is True


def test_the_probes_ask_the_operator_whether_it_still_reconciles(render: Renderer) -> None:
    documents = render.documents({"livenessTimeoutSeconds": 90})

    container = _of(documents, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]

    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert _settings(documents).liveness_timeout == 90.0


def test_user_roles_aggregate_into_the_built_in_roles_and_never_write_status(render: Renderer) -> None:
    roles = {d["metadata"]["name"]: d for d in _of(render.documents({}), "ClusterRole")}
    without = {d["metadata"]["name"] for d in _of(render.documents({"aggregateRoles": False}), "ClusterRole")}

    view, edit = roles["kubeopt-view"], roles["kubeopt-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert {edit["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{r}"] for r in ("edit", "admin")} \
        == {"true"}
    status_verbs = {v for role in (view, edit) for rule in role["rules"] if "modeloptimizations/status" in
                    rule["resources"] for v in rule["verbs"]}
    assert status_verbs == {"get", "list", "watch"}
    assert not {"kubeopt-view", "kubeopt-edit"} & without
