"""Monitoring as it runs under the Prometheus Operator: the chart's ServiceMonitor keeps the resource's namespace.

The operator's series carry the ModelOptimization's own ``namespace`` label. Under the
Prometheus Operator every target also gets the Service's ``namespace`` (the operator's); without
``honorLabels`` the target's wins and the resource's becomes ``exported_namespace``, so alerts
and the dashboard's namespace filter would name the operator's namespace. Here a real Prometheus
scrapes the operator through a scrape job made from the chart's rendered ServiceMonitor
(kubeopt_e2e.monitoring) and, as a control, through the same job with honor_labels off. The
alert rules' own promtool tests (charts/kubeopt/rules/kubeopt.rules.test.yaml) feed series of the
shape the first job produces.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.monitoring import scrape_config
from kubeopt_e2e.operator import OperatorProcess, running_operator, service_account_kubeconfig
from kubeopt_e2e.prometheus import PrometheusServer, prometheus_binary

from kubeopt.controller.dashboard import expressions

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
RULES = CHART / "rules" / "kubeopt.rules.yaml"
DASHBOARD = CHART / "dashboards" / "kubeopt.json"
OPERATOR_NAMESPACE = "kubeopt-system"
CREATED = "kubeopt_target_jobs_created_total"
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
def service_monitor(helm_offline: Helm) -> dict[str, Any]:
    rendered = helm_offline("template", "kubeopt", str(CHART), "--namespace", OPERATOR_NAMESPACE,
                            "--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.interval=1s").stdout
    return next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ServiceMonitor")


@pytest.fixture(scope="module")
def operator(kubectl: Kubectl, helm_offline: Helm,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART,
                                               tmp_path_factory.mktemp("mon-sa") / "kubeconfig")
    with running_operator(kubeconfig, tmp_path_factory.mktemp("mon-operator") / "operator.log") as process:
        yield process


@pytest.fixture(scope="module")
def jobs(service_monitor: dict[str, Any], operator: OperatorProcess) -> dict[str, dict[str, Any]]:
    """The chart's scrape job and the control (honor_labels off), by name."""
    target = operator.metrics_url.removeprefix("http://")
    made = [scrape_config(service_monitor, target, "kubeopt-metrics", "kubeopt-0"),
            scrape_config(service_monitor, target, "kubeopt-metrics", "kubeopt-0", honor_labels=False)]
    return {"chart": made[0], "control": made[1]}


@pytest.fixture(scope="module")
def prometheus(jobs: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with PrometheusServer(tmp_path_factory.mktemp("mon-prometheus"), scrape={}, rule_files=[RULES],
                          scrape_configs=list(jobs.values())) as server:
        yield server


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


def _series(prometheus: PrometheusServer, job: dict[str, Any], operator: OperatorProcess) -> list[dict[str, Any]]:
    expr = f'{CREATED}{{job="{job["job_name"]}"}}'
    return eventually(expr, lambda: prometheus.query(expr),
                      lambda: f"{json.dumps(prometheus.targets(), indent=1)}\n{prometheus.tail()}\n{operator.tail()}")


def test_the_service_monitor_keeps_the_resources_namespace_on_every_series(
        prometheus: PrometheusServer, jobs: dict[str, dict[str, Any]], operator: OperatorProcess,
        resource_namespace: str) -> None:
    series = _series(prometheus, jobs["chart"], operator)

    assert jobs["chart"]["honor_labels"] is True
    assert [s["metric"]["namespace"] for s in series] == [resource_namespace]
    assert not [s for s in series if "exported_namespace" in s["metric"]]


def test_without_honor_labels_the_operators_namespace_would_replace_it(
        prometheus: PrometheusServer, jobs: dict[str, dict[str, Any]], operator: OperatorProcess,
        resource_namespace: str) -> None:
    series = _series(prometheus, jobs["control"], operator)

    assert [(s["metric"]["namespace"], s["metric"]["exported_namespace"]) for s in series] == [
        (OPERATOR_NAMESPACE, resource_namespace)]


def test_the_dashboard_filtered_on_the_resources_namespace_finds_its_series(
        prometheus: PrometheusServer, jobs: dict[str, dict[str, Any]], operator: OperatorProcess,
        resource_namespace: str) -> None:
    _series(prometheus, jobs["chart"], operator)
    chart_job = f'job="{jobs["chart"]["job_name"]}"'
    queries = [e.replace("$namespace", resource_namespace).replace("$__rate_interval", "1m")
               for e in expressions(json.loads(DASHBOARD.read_text())) if "$namespace" in e]

    def answers() -> list[dict[str, Any]]:  # a rate needs two scrapes of the new series
        return [s for q in queries for s in prometheus.query(q) if "namespace" in s["metric"]]

    answered = eventually("a dashboard panel with the resource's namespace", answers, prometheus.tail)
    listed = prometheus.api("label/namespace/values", **{"match[]": f"{CREATED}{{{chart_job}}}"})

    assert {s["metric"]["namespace"] for s in answered} == {resource_namespace}
    assert listed == [resource_namespace]  # what the dashboard's $namespace variable offers
