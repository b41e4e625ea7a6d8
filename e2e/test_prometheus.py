"""Prometheus from Debian scrapes the operator and loads the chart's alert rules.

A real Prometheus (``/usr/bin/prometheus``, ``e2e/install-debian-tools.sh``) runs on a free
loopback port with a 1 s scrape and evaluation interval, scraping the operator's /metrics
(the operator runs as in test_operator.py: its own process, the chart's RBAC only) and
loading ``charts/kubeopt/rules/kubeopt.rules.yaml``. Every dashboard query is evaluated by
that Prometheus too, so a PromQL mistake in the generated dashboard fails here.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.operator import OperatorProcess, running_operator, service_account_kubeconfig
from kubeopt_e2e.prometheus import PrometheusServer, prometheus_binary

from kubeopt.controller.dashboard import expressions

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubeopt"
CRD = ROOT / "crds" / "modeloptimizations.kubeopt.io.yaml"
RULES = CHART / "rules" / "kubeopt.rules.yaml"
DASHBOARD = CHART / "dashboards" / "kubeopt.json"
T = TypeVar("T")

# Under CI=true they run (and fail) without it: `make test` installs it first.
pytestmark = pytest.mark.skipif(prometheus_binary() is None and os.environ.get("CI", "").lower() not in {"1", "true"},
                                reason="prometheus is not installed: run e2e/install-debian-tools.sh")


def eventually(what: str, probe: Callable[[], T | None], explain: Callable[[], str], timeout: float = 30.0) -> T:
    """Poll ``probe`` (errors count as not yet) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{last}\n{explain()}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def operator(kubectl: Kubectl, helm_offline: Helm,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART,
                                               tmp_path_factory.mktemp("prom-sa") / "kubeconfig")
    with running_operator(kubeconfig, tmp_path_factory.mktemp("prom-operator") / "operator.log") as process:
        yield process


@pytest.fixture(scope="module")
def prometheus(operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"),
                              scrape={"kubeopt": [operator.metrics_url.removeprefix("http://")]}, rule_files=[RULES])
    with server:
        yield server


@pytest.fixture(scope="module")
def one_job(kubectl: Kubectl, operator: OperatorProcess) -> Iterator[str]:
    """A ModelOptimization whose one target Job the operator creates (no node takes its GPU pod)."""
    namespace = f"e2e-prom-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "kubeopt.io/enabled=true")  # opted in, as the chart asks
    body = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "scraped", "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/m.onnx", "format": "onnx", "task": "classification",
                               "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
                     "targets": [{"name": "trt", "backend": "tensorrt", "precision": "fp16"}],
                     "output": {"uri": f"s3://artifacts/{namespace}/scraped"}, "resources": {"gpu": 1}}}
    kubectl.apply(yaml.safe_dump(body))
    try:
        yield namespace
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_prometheus_scrapes_the_operator(prometheus: PrometheusServer, operator: OperatorProcess) -> None:
    def explain() -> str:
        return f"{json.dumps(prometheus.targets(), indent=1)}\n{prometheus.tail()}\n{operator.tail()}"

    up = eventually('up{job="kubeopt"} == 1', lambda: prometheus.query('up{job="kubeopt"} == 1'), explain)
    phases = eventually("kubeopt_optimizations by phase", lambda: prometheus.query("kubeopt_optimizations"), explain)

    assert up[0]["metric"]["instance"] == operator.metrics_url.removeprefix("http://")
    assert {s["metric"]["phase"] for s in phases} == {"Pending", "Running", "Succeeded", "Failed", "Suspended"}
    assert {s["metric"]["job"] for s in phases} == {"kubeopt"}


def test_a_created_job_shows_up_as_a_series_the_dashboard_filters_on(
        prometheus: PrometheusServer, operator: OperatorProcess, one_job: str) -> None:
    expr = f'kubeopt_target_jobs_created_total{{namespace="{one_job}"}}'

    created = eventually(expr, lambda: prometheus.query(expr), lambda: f"{operator.tail()}\n{prometheus.tail()}")
    namespaces = prometheus.api("label/namespace/values", **{"match[]": "kubeopt_target_jobs_created_total"})

    assert float(created[0]["value"][1]) == 1.0
    assert one_job in namespaces  # what the dashboard's $namespace variable lists


def test_every_dashboard_query_evaluates_in_prometheus(prometheus: PrometheusServer, one_job: str) -> None:
    exprs = expressions(json.loads(DASHBOARD.read_text()))

    for expr in exprs:
        concrete = expr.replace("$namespace", ".*").replace("$__rate_interval", "1m")
        prometheus.query(concrete)  # raises unless Prometheus answers success

    assert exprs


def test_prometheus_loads_and_evaluates_the_kubeopt_rule_group(prometheus: PrometheusServer) -> None:
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}

    def group() -> dict[str, Any] | None:
        found = next((g for g in prometheus.rules() if g["name"] == "kubeopt"), None)
        # Evaluated against real data: every rule healthy, and the operator's metrics present.
        ready = found and all(r["health"] == "ok" for r in found["rules"]) and next(
            r for r in found["rules"] if r["name"] == "KubeoptMetricsAbsent")["state"] == "inactive"
        return found if ready else None

    found = eventually("the kubeopt rule group, evaluated", group,
                       lambda: json.dumps(prometheus.rules(), indent=1)[-4000:])

    assert found["file"] == str(RULES)
    assert {r["name"] for r in found["rules"]} == expected
    assert all(r["type"] == "alerting" and not r.get("lastError") for r in found["rules"])


def test_the_chart_embeds_exactly_these_rules_and_this_dashboard(helm_offline: Helm) -> None:
    rendered = helm_offline("template", "kubeopt", str(CHART), "--namespace", "monitoring",
                            "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true").stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered) if d}
    plain = {d["kind"] for d in yaml.safe_load_all(helm_offline("template", "kubeopt", str(CHART)).stdout) if d}

    assert docs["PrometheusRule"]["spec"] == yaml.safe_load(RULES.read_text())
    assert docs["ConfigMap"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert docs["ConfigMap"]["data"]["kubeopt.json"] + "\n" == DASHBOARD.read_text()
    assert not {"PrometheusRule", "ConfigMap"} & plain
