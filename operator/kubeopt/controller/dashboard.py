"""The Grafana dashboard, generated from the metric names in :mod:`kubeopt.controller.metrics`.

``python -m kubeopt.controller.dashboard > charts/kubeopt/dashboards/kubeopt.json`` writes
the copy the Helm chart ships (a ConfigMap labelled ``grafana_dashboard: "1"``); a unit test
fails when that copy differs from :func:`render` or when an expression names a series the
registry does not expose. No ML framework and no Kubernetes client is imported here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeopt.controller.metrics import (
    COMPILE,
    CONDITION,
    JOB_DURATION,
    JOBS_CREATED,
    JOBS_FAILED,
    JOBS_SUCCEEDED,
    LATENCY_P50,
    METRIC_NAMES,
    OPTIMIZATIONS,
    RECONCILE_ERRORS,
    RECONCILE_RETRIES,
    SPEEDUP,
    THROUGHPUT,
)

__all__ = ["HISTOGRAMS", "UID", "build_dashboard", "expressions", "referenced_metrics", "render",
           "series_names"]

UID = "kubeopt"
TITLE = "kubeopt"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
RATE = "[$__rate_interval]"
TARGET_LEGEND = "{{namespace}}/{{name}} {{target}}"
#: Histograms among ``METRIC_NAMES``: PromQL sees them as ``_bucket``, ``_sum`` and ``_count``.
HISTOGRAMS: tuple[str, ...] = (JOB_DURATION,)
WIDTH = 24
HEIGHT = 8


def series_names() -> frozenset[str]:
    """Every series name PromQL can select from the operator's registry."""
    names = set(METRIC_NAMES)
    for histogram in HISTOGRAMS:
        names.discard(histogram)
        names.update(f"{histogram}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return frozenset(names)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "inf", "nan", "Inf", "NaN"})


def referenced_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expr)
    for pattern in (_BRACES, _BRACKETS, _GROUPING, _OFFSET):
        text = pattern.sub(" ", text)
    return {m.group(1) for m in _IDENT.finditer(text) if not m.group(2) and m.group(1) not in _KEYWORDS}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """How a table panel shows its instant queries: leading columns, hidden columns, sort order."""

    columns: Sequence[str] = ("namespace", "name", "target")
    hidden: Sequence[str] = ()
    sort_by: str = "speedup"
    sort_desc: bool = True


def _rate(counter: str, by: str) -> str:
    return f"sum by ({by}) (rate({counter}_total{{{NS}}}{RATE}))"


def _quantile(q: float) -> Query:
    expr = f"histogram_quantile({q}, sum by (le) (rate({JOB_DURATION}_bucket{{{NS}}}{RATE})))"
    return Query(expr, f"p{round(q * 100)}")


def _per_target(metric: str) -> Query:
    return Query(f"max by (namespace, name, target) ({metric}{{{NS}}})", TARGET_LEGEND)


def _panels() -> list[Panel]:
    return [
        Panel("Optimizations by phase", "ModelOptimizations known to the operator, by status.phase "
              "(all namespaces).", [Query(f"sum by (phase) ({OPTIMIZATIONS})", "{{phase}}")],
              extra={"stack": True}),
        Panel("Reconcile errors", "Reconciliations that raised, per second, and the retries kopf runs for "
              "them (throttled: the API server answered 429).",
              [Query(_rate(RECONCILE_ERRORS, "namespace"), "{{namespace}}"),
               Query(_rate(RECONCILE_RETRIES, "namespace, cause"), "retried {{cause}} {{namespace}}")], unit="ops"),
        Panel("Target Jobs", "Target Jobs created, succeeded and failed, per second.", [
            Query(_rate(JOBS_CREATED, "namespace"), "created {{namespace}}"),
            Query(_rate(JOBS_SUCCEEDED, "namespace"), "succeeded {{namespace}}"),
            Query(_rate(JOBS_FAILED, "namespace"), "failed {{namespace}}"),
        ], unit="ops"),
        Panel("Failed target Jobs by reason", "Target Jobs that failed, per second, by the reason "
              "the worker or the Job reported.",
              [Query(_rate(JOBS_FAILED, "namespace, reason"), "{{reason}} {{namespace}}")], unit="ops"),
        Panel("Target Job duration", "Quantiles of target Job duration, from start to completion.",
              [_quantile(0.5), _quantile(0.9), _quantile(0.99)], unit="s", width=24),
        Panel("Throughput", "Samples per second at the selection batch size, per succeeded target.",
              [_per_target(THROUGHPUT)], width=8),
        Panel("Latency p50", "Median latency at the selection batch size, per succeeded target.",
              [_per_target(LATENCY_P50)], unit="s", width=8),
        Panel("Speedup", "Throughput over the baseline measured in the same Job, per succeeded target.",
              [_per_target(SPEEDUP)], unit="suffix:x", width=8),
        Panel("Targets", "The latest figures of every succeeded target, with the seconds its build took.", [
            Query(f"max by (namespace, name, target) ({metric}{{{NS}}})", legend, instant=True)
            for metric, legend in ((THROUGHPUT, "throughput"), (LATENCY_P50, "latency p50"), (SPEEDUP, "speedup"),
                                   (COMPILE, "compile s"))
        ], kind="table", width=24, extra={"table": Table()}),
        Panel("Stalled optimizations", "ModelOptimizations whose Stalled condition is True, with its reason "
              "(Unschedulable, InvalidSpec, a failed target's reason): none progresses without a change. "
              "`kubectl describe mopt` shows the condition's message.",
              [Query(f'max by (namespace, name, reason) ({CONDITION}{{condition="Stalled",{NS}}}) == 1', "stalled",
                     instant=True)],
              kind="table", width=24,
              extra={"table": Table(columns=("namespace", "name", "reason"), hidden=("stalled",), sort_by="namespace",
                                    sort_desc=False)}),
    ]


def _targets(queries: Sequence[Query], table: bool) -> list[dict[str, Any]]:
    out = []
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        target: dict[str, Any] = {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend,
                                  "refId": ref}
        if query.instant:
            target.update(instant=True, range=False)
        if table:
            target["format"] = "table"
        out.append(target)
    return out


def _table_transformations(queries: Sequence[Query], table: Table) -> list[dict[str, Any]]:
    """Join the instant queries on the table's leading columns; name each value column."""
    values = [f"Value #{ref}" if len(queries) > 1 else "Value" for ref, _ in zip("ABCDEFGH", queries, strict=False)]
    renames = {value: query.legend for value, query in zip(values, queries, strict=True)}
    hidden = {value for value, query in zip(values, queries, strict=True) if query.legend in table.hidden}
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True, **dict.fromkeys(sorted(hidden), True)},
                                       "renameByName": renames,
                                       "indexByName": {column: i for i, column in enumerate(table.columns)}}},
    ]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    table: Table | None = panel.extra.get("table")
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": panel.width, "x": x, "y": y},
        "targets": _targets(panel.queries, table is not None),
    }
    defaults: dict[str, Any] = {"unit": panel.unit}
    if table is not None:
        body["transformations"] = _table_transformations(panel.queries, table)
        body["options"] = {"showHeader": True, "sortBy": [{"displayName": table.sort_by, "desc": table.sort_desc}]}
        defaults["decimals"] = 3
    else:
        defaults["custom"] = {"fillOpacity": 10, "showPoints": "never",
                              "stacking": {"mode": "normal" if panel.extra.get("stack") else "none",
                                           "group": "A"}}
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                           "tooltip": {"mode": "multi", "sort": "desc"}}
    body["fieldConfig"] = {"defaults": defaults, "overrides": []}
    return body


def _layout(panels: Iterable[Panel]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    x = y = 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > WIDTH:
            x, y = 0, y + HEIGHT
        out.append(_panel(panel, number, x, y))
        x += panel.width
    return out


def _variables() -> list[dict[str, Any]]:
    namespaces = f"label_values({JOBS_CREATED}_total, namespace)"
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "options": []},
        {"name": "namespace", "label": "Namespace", "type": "query", "datasource": DATASOURCE,
         "definition": namespaces, "query": {"query": namespaces, "refId": "namespaces"},
         "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "hide": 0, "refresh": 2,
         "sort": 1, "options": []},
    ]


def build_dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model; raises if a query names an unknown series."""
    dashboard: dict[str, Any] = {
        "uid": UID,
        "title": TITLE,
        "description": "The kubeopt operator: ModelOptimizations, target Jobs and per-target results. "
                       "Generated by kubeopt.controller.dashboard; do not edit by hand.",
        "tags": ["kubeopt"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables()},
        "panels": _layout(_panels()),
    }
    known = series_names()
    for expr in expressions(dashboard):
        unknown = referenced_metrics(expr) - known
        if unknown:
            raise ValueError(f"{expr!r} names series the registry does not expose: {sorted(unknown)}")
    return dashboard


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else str(query)
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", text))
    return exprs


def render() -> str:
    """The dashboard JSON exactly as committed in the chart."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
