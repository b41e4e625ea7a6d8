from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kubeopt.controller.dashboard import (
    HISTOGRAMS,
    build_dashboard,
    expressions,
    referenced_metrics,
    render,
    series_names,
)
from kubeopt.controller.metrics import METRIC_NAMES, Metrics

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "charts" / "kubeopt" / "dashboards" / "kubeopt.json"
REGENERATE = "python -m kubeopt.controller.dashboard > charts/kubeopt/dashboards/kubeopt.json"


def registry_series() -> set[str]:
    """Series names PromQL can select, read off a real registry of the operator's metrics."""
    names: set[str] = set()
    for metric in Metrics(CollectorRegistry()).registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(metric.type, [""])
        names.update(metric.name + suffix for suffix in suffixes)
    return names


def test_committed_dashboard_is_what_the_module_generates() -> None:
    assert COMMITTED.read_text() == render(), f"{COMMITTED.relative_to(ROOT)} is stale: run `{REGENERATE}`"


def test_series_names_are_exactly_what_the_registry_exposes() -> None:
    assert series_names() == registry_series()
    assert set(HISTOGRAMS) <= set(METRIC_NAMES)


def test_every_expression_names_only_series_of_the_registry() -> None:
    dashboard = json.loads(COMMITTED.read_text())
    known = registry_series()

    exprs = expressions(dashboard)

    assert len(exprs) >= 10
    for expr in exprs:
        names = referenced_metrics(expr)
        assert names, expr
        assert names <= known, (expr, names - known)
        # Independently of the parser: every kubeopt_ token is a known series.
        assert set(re.findall(r"\bkubeopt_\w+", expr)) <= known, expr


def test_every_metric_of_the_registry_is_on_the_dashboard() -> None:
    used = set().union(*(referenced_metrics(e) for e in expressions(build_dashboard())))

    for name in METRIC_NAMES:
        assert name in used or f"{name}_bucket" in used, name


def test_panels_cover_phases_jobs_errors_durations_and_per_target_figures() -> None:
    panels = {p["title"]: p for p in build_dashboard()["panels"]}

    assert {"Optimizations by phase", "Target Jobs", "Reconcile errors", "Target Job duration", "Throughput",
            "Latency p50", "Speedup", "Targets"} <= set(panels)
    assert [t["legendFormat"] for t in panels["Target Job duration"]["targets"]] == ["p50", "p90", "p99"]
    for title in ("Throughput", "Latency p50", "Speedup"):
        assert "by (namespace, name, target)" in panels[title]["targets"][0]["expr"]
    assert len({p["id"] for p in panels.values()}) == len(panels)


def test_panels_tile_the_grid_without_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in build_dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (namespace, le) (rate(a_bucket{namespace=~"$ns",x="b(c)"}[$__rate_interval]))', {"a_bucket"}),
    ("histogram_quantile(0.9, b) / on (namespace) group_left (name) c offset 5m", {"b", "c"}),
    ("(x > 0) or (y unless y offset 15m) and on () (count(z offset 15m) > 0)", {"x", "y", "z"}),
    ("absent(kubeopt_optimizations)", {"kubeopt_optimizations"}),
])
def test_referenced_metrics_skips_functions_labels_and_keywords(expr: str, names: set[str]) -> None:
    assert referenced_metrics(expr) == names


def test_an_unknown_series_is_refused_at_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubeopt.controller.dashboard as module

    monkeypatch.setattr(module, "THROUGHPUT", "kubeopt_no_such_metric")

    with pytest.raises(ValueError, match="kubeopt_no_such_metric"):
        module.build_dashboard()
