"""Monitoring as it runs under the Prometheus Operator: the chart's ServiceMonitor keeps the resource's namespace.

The operator's series carry the ModelOptimization's own ``namespace`` label. Under the
Prometheus Operator every target also gets the Service's ``namespace`` (the operator's); without
``honorLabels`` the target's wins and the resource's becomes ``exported_namespace``, so alerts
and the dashboard's namespace filter would name the operator's namespace.

Nothing of the scrape configuration is written here: the Prometheus Operator's own config
generator (e2e/promop-config, its Go module) turns a Prometheus resource and the chart's rendered
ServiceMonitor into ``prometheus.yml`` (EndpointSlice discovery, the operator's relabelling), and
Debian's Prometheus runs it with the chart's alert rules. Debian builds Prometheus without
Kubernetes discovery, so Prometheus's own discovery code runs beside it (e2e/promop-discover)
and hands it the discovered targets, meta labels and all, through file_sd. Discovery goes
through the e2e API server as a ServiceAccount with the Role a Prometheus needs, and finds the
chart's metrics Service and an EndpointSlice for it naming the operator process on this host (no
kubelet or EndpointSlice controller runs in e2e). A second ServiceMonitor, the chart's with
``honorLabels: false``, is the control: it shows what these tests would catch.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.monitoring import (
    config_generator,
    discovery_binary,
    generate_config,
    host_address,
    in_cluster_connection,
    kubernetes_discovery,
    with_file_sd,
)
from kubeopt_e2e.operator import OperatorProcess, chart_documents, running_operator, service_account_kubeconfig
from kubeopt_e2e.prometheus import PrometheusServer, prometheus_binary

from kubeopt.controller.dashboard import expressions

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
RULES = CHART / "rules" / "kubeopt.rules.yaml"
DASHBOARD = CHART / "dashboards" / "kubeopt.json"
OPERATOR_NAMESPACE = "kubeopt-system"
CREATED = "kubeopt_target_jobs_created_total"
#: The chart's ServiceMonitor's job label: the operator's relabelling names it after the Service.
CHART_JOB = "kubeopt-metrics"
CONTROL_JOB = "kubeopt-control"
PROMETHEUS_ACCOUNT = "prometheus-e2e"
T = TypeVar("T")

pytestmark = pytest.mark.skipif(prometheus_binary() is None,
                                reason="prometheus is not installed: run e2e/install-debian-tools.sh")


def eventually(what: str, probe: Callable[[], T | None], explain: Callable[[], str], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{explain()}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def generator() -> Path:
    built = config_generator()
    if built is None:
        pytest.skip("go is not installed: e2e/promop-config (the Prometheus Operator's config generator) needs it")
    return built


@pytest.fixture(scope="module")
def discoverer() -> Path:
    built = discovery_binary()
    if built is None:
        pytest.skip("go is not installed: e2e/promop-discover (Prometheus's Kubernetes discovery) needs it")
    return built


@pytest.fixture(scope="module")
def operator(kubectl: Kubectl, helm_offline: Helm,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART,
                                               tmp_path_factory.mktemp("mon-sa") / "kubeconfig")
    with running_operator(kubeconfig, tmp_path_factory.mktemp("mon-operator") / "operator.log") as process:
        yield process


@pytest.fixture(scope="module")
def chart_objects(helm_offline: Helm, operator: OperatorProcess) -> dict[str, dict[str, Any]]:
    """The chart's metrics Service and ServiceMonitor (by kind), for the operator's metrics port."""
    values = ("serviceMonitor.enabled=true", "serviceMonitor.interval=1s", f"metricsPort={operator.metrics_port}")
    documents = chart_documents(helm_offline, CHART, "kubeopt", OPERATOR_NAMESPACE, {"Service", "ServiceMonitor"},
                                values)
    return {d["kind"]: d for d in documents}


@pytest.fixture(scope="module")
def discoverable_operator(kubectl: Kubectl, chart_objects: dict[str, dict[str, Any]],
                          operator: OperatorProcess) -> Iterator[str]:
    """The chart's Service, and an EndpointSlice for it naming the operator on this host's address."""
    address = host_address()
    if address is None:
        pytest.skip("this host has no global IPv4 address (the API server refuses loopback endpoints)")
    service = chart_objects["Service"]
    (port,) = service["spec"]["ports"]
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service['metadata']['name']}-e2e", "namespace": OPERATOR_NAMESPACE,
                     "labels": {"kubernetes.io/service-name": service["metadata"]["name"],
                                "endpointslice.kubernetes.io/managed-by": "e2e.kubeopt.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": port["name"], "port": operator.metrics_port, "protocol": "TCP"}],
    }
    kubectl.apply(yaml.safe_dump_all([service, endpoints]))
    try:
        yield address
    finally:
        kubectl("delete", "endpointslice", endpoints["metadata"]["name"], "-n", OPERATOR_NAMESPACE,
                "--ignore-not-found", check=False)
        kubectl("delete", "service", service["metadata"]["name"], "-n", OPERATOR_NAMESPACE,
                "--ignore-not-found", check=False)


def _prometheus_resource() -> dict[str, Any]:
    """A Prometheus as a platform team writes one: every namespace's monitors with the chart's name label."""
    binary = prometheus_binary()
    assert binary is not None
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.split()[2]
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "e2e", "namespace": OPERATOR_NAMESPACE},
        "spec": {"version": f"v{version.split('+')[0]}", "serviceDiscoveryRole": "EndpointSlice",
                 "scrapeInterval": "1s", "evaluationInterval": "1s",
                 "serviceAccountName": PROMETHEUS_ACCOUNT,
                 "serviceMonitorSelector": {"matchLabels": {"app.kubernetes.io/name": "kubeopt"}},
                 "serviceMonitorNamespaceSelector": {}},
    }


def _control(service_monitor: dict[str, Any]) -> dict[str, Any]:
    """The chart's ServiceMonitor with honorLabels off, its job label set apart from the chart's."""
    control = copy.deepcopy(service_monitor)
    control["metadata"]["name"] = f"{service_monitor['metadata']['name']}-control"
    for endpoint in control["spec"]["endpoints"]:
        endpoint["honorLabels"] = False
        endpoint["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": CONTROL_JOB}]
    return control


@pytest.fixture(scope="module")
def generated(generator: Path, kubectl: Kubectl, chart_objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The prometheus.yml the Prometheus Operator writes for the chart's ServiceMonitor and the control."""
    namespaces = kubectl.json("get", "namespaces")["items"]
    monitor = chart_objects["ServiceMonitor"]
    return generate_config(generator, [_prometheus_resource(), monitor, _control(monitor), *namespaces])


@pytest.fixture(scope="module")
def prometheus(discoverer: Path, generated: dict[str, Any], kubectl: Kubectl, discoverable_operator: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus running the generated configuration, its Kubernetes discovery as ServiceAccount prometheus-e2e."""
    work = tmp_path_factory.mktemp("mon-prometheus")
    # What kube-prometheus grants its Prometheus in each namespace it monitors.
    rbac = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": PROMETHEUS_ACCOUNT, "namespace": OPERATOR_NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": PROMETHEUS_ACCOUNT, "namespace": OPERATOR_NAMESPACE},
         "rules": [{"apiGroups": [""], "resources": ["services", "endpoints", "pods"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": PROMETHEUS_ACCOUNT, "namespace": OPERATOR_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PROMETHEUS_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS_ACCOUNT, "namespace": OPERATOR_NAMESPACE}]},
    ]
    kubectl.apply(yaml.safe_dump_all(rbac))
    try:
        token = work / "token"
        token.write_text(kubectl("create", "token", PROMETHEUS_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                                 "--duration", "2h").stdout.strip())
        cluster = yaml.safe_load(kubectl.kubeconfig.read_text())["clusters"][0]["cluster"]
        ca = work / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        config = in_cluster_connection(generated, cluster["server"], ca, token)
        with (kubernetes_discovery(discoverer, config, work / "discovery") as files,
              PrometheusServer(work, scrape={}, rule_files=[RULES], config=with_file_sd(config, files)) as server):
            yield server
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", input=yaml.safe_dump_all(rbac), check=False)


@pytest.fixture(scope="module")
def resource_namespace(kubectl: Kubectl, operator: OperatorProcess) -> Iterator[str]:
    """A namespace with one ModelOptimization whose target Job the operator creates."""
    namespace = f"e2e-mon-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "kubeopt.io/enabled=true")
    body = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "monitored", "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx", "task": "classification",
                               "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
                     "targets": [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                     "output": {"uri": f"s3://artifacts/{namespace}/monitored"}, "resources": {"gpu": 1}}}
    kubectl.apply(yaml.safe_dump(body))
    try:
        yield namespace
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _series(prometheus: PrometheusServer, job: str, operator: OperatorProcess) -> list[dict[str, Any]]:
    expr = f'{CREATED}{{job="{job}"}}'
    return eventually(expr, lambda: prometheus.query(expr),
                      lambda: f"{json.dumps(prometheus.targets(), indent=1)}\n{prometheus.tail()}\n{operator.tail()}")


def _job(generated: dict[str, Any], service_monitor: str) -> dict[str, Any]:
    name = f"serviceMonitor/{OPERATOR_NAMESPACE}/{service_monitor}/0"
    jobs = {job["job_name"]: job for job in generated["scrape_configs"]}
    assert name in jobs, f"the generator wrote no job {name}: {sorted(jobs)}"
    return jobs[name]


def test_the_operator_generates_an_endpointslice_job_with_honor_labels_from_the_chart(
        generated: dict[str, Any], chart_objects: dict[str, dict[str, Any]]) -> None:
    job = _job(generated, chart_objects["ServiceMonitor"]["metadata"]["name"])

    assert job["honor_labels"] is True
    assert [(sd["role"], sd["namespaces"]["names"]) for sd in job["kubernetes_sd_configs"]] == [
        ("endpointslice", [OPERATOR_NAMESPACE])]
    assert "api_server" not in job["kubernetes_sd_configs"][0]  # in a pod, Prometheus uses its ServiceAccount


def test_the_service_monitor_keeps_the_resources_namespace_on_every_series(
        prometheus: PrometheusServer, operator: OperatorProcess, discoverable_operator: str,
        resource_namespace: str) -> None:
    series = _series(prometheus, CHART_JOB, operator)

    assert [s["metric"]["namespace"] for s in series] == [resource_namespace]
    assert not [s for s in series if "exported_namespace" in s["metric"]]
    assert {(s["metric"]["service"], s["metric"]["endpoint"]) for s in series} == {(CHART_JOB, "metrics")}
    assert {s["metric"]["instance"] for s in series} == {f"{discoverable_operator}:{operator.metrics_port}"}
    (target,) = [t for t in prometheus.targets() if t["labels"]["job"] == CHART_JOB]
    assert target["discoveredLabels"]["__meta_kubernetes_endpointslice_name"] == f"{CHART_JOB}-e2e"


def test_without_honor_labels_the_operators_namespace_would_replace_it(
        prometheus: PrometheusServer, operator: OperatorProcess, resource_namespace: str) -> None:
    series = _series(prometheus, CONTROL_JOB, operator)

    assert [(s["metric"]["namespace"], s["metric"]["exported_namespace"]) for s in series] == [
        (OPERATOR_NAMESPACE, resource_namespace)]


def test_the_dashboard_filtered_on_the_resources_namespace_finds_its_series(
        prometheus: PrometheusServer, operator: OperatorProcess, resource_namespace: str) -> None:
    _series(prometheus, CHART_JOB, operator)
    queries = [e.replace("$namespace", resource_namespace).replace("$__rate_interval", "1m")
               for e in expressions(json.loads(DASHBOARD.read_text())) if "$namespace" in e]

    def answers() -> list[dict[str, Any]]:  # a rate needs two scrapes of the new series
        return [s for q in queries for s in prometheus.query(q) if "namespace" in s["metric"]]

    answered = eventually("a dashboard panel with the resource's namespace", answers, prometheus.tail)
    listed = prometheus.api("label/namespace/values", **{"match[]": f'{CREATED}{{job="{CHART_JOB}"}}'})

    assert {s["metric"]["namespace"] for s in answered} == {resource_namespace}
    assert listed == [resource_namespace]  # what the dashboard's $namespace variable offers


def test_the_stalled_alert_names_the_resources_namespace(
        prometheus: PrometheusServer, kubectl: Kubectl, operator: OperatorProcess, resource_namespace: str) -> None:
    pod = eventually("the target's pod", lambda: kubectl.json("get", "pods", "-n", resource_namespace)["items"],
                     operator.tail)[0]
    # What the scheduler writes when no node has the GPU (e2e runs no scheduler).
    kubectl("patch", "pod", pod["metadata"]["name"], "-n", resource_namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}))

    def both_pending() -> list[dict[str, Any]] | None:  # the expression holds; `for: 15m` keeps it pending
        alerts = [alert for group in prometheus.rules() for rule in group["rules"]
                  if rule.get("name") == "KubeoptOptimizationStalled" for alert in rule.get("alerts", [])]
        return alerts if len(alerts) == 2 else None

    alerts = eventually("KubeoptOptimizationStalled pending for the chart's and the control's series", both_pending,
                        lambda: f"{prometheus.tail()}\n{operator.tail()}", timeout=60)
    by_namespace = {a["labels"]["namespace"]: a for a in alerts}

    assert sorted(by_namespace) == sorted([resource_namespace, OPERATOR_NAMESPACE])  # the chart's job, the control's
    chart = by_namespace[resource_namespace]
    assert (chart["state"], chart["labels"]["name"], chart["labels"]["reason"]) == (
        "pending", "monitored", "Unschedulable")
    assert chart["annotations"]["summary"].startswith(f"ModelOptimization {resource_namespace}/monitored ")


def test_a_service_monitor_field_the_operator_does_not_know_fails_the_generator(
        generator: Path, chart_objects: dict[str, dict[str, Any]]) -> None:
    typo = copy.deepcopy(chart_objects["ServiceMonitor"])
    typo["spec"]["endpoints"][0]["honorLabel"] = typo["spec"]["endpoints"][0].pop("honorLabels")

    refused = 'ServiceMonitor: error unmarshaling JSON: while decoding JSON: json: unknown field "honorLabel"'
    with pytest.raises(AssertionError, match=re.escape(refused)):
        generate_config(generator, [_prometheus_resource(), typo])
