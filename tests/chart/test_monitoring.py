"""The alerts and the dashboard speak of the resource's namespace, the label the operator's series carry.

Under the Prometheus Operator that label survives only because the chart's ServiceMonitor sets
``honorLabels`` (tests/chart/test_values.py; e2e/test_monitoring.py scrapes through it). These
tests keep the rules and the dashboard on that label: every alert about resources groups by
``namespace`` and names it in its summary, and nothing reads ``exported_namespace``, the name
the label would have had without honorLabels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kubeopt.controller.dashboard import expressions

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubeopt"
RULES = yaml.safe_load((CHART / "rules" / "kubeopt.rules.yaml").read_text())
DASHBOARD = json.loads((CHART / "dashboards" / "kubeopt.json").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]


def _groupings(expr: str) -> list[set[str]]:
    return [{label.strip() for label in found.split(",")} for found in re.findall(r"\bby \(([^)]*)\)", expr)]


def test_every_alert_about_resources_groups_by_their_namespace_and_names_it() -> None:
    about_resources = [a for a in ALERTS if "absent(" not in a["expr"]]

    for alert in about_resources:
        groupings = _groupings(alert["expr"])
        assert groupings and all("namespace" in g for g in groupings), alert["alert"]
        assert "$labels.namespace" in alert["annotations"]["summary"], alert["alert"]
    assert len(about_resources) >= 4


def test_the_dashboards_namespace_filter_is_on_the_namespace_label() -> None:
    filtered = [e for e in expressions(DASHBOARD) if "$namespace" in e]
    variable = next(v for v in DASHBOARD["templating"]["list"] if v["name"] == "namespace")

    assert filtered and all('namespace=~"$namespace"' in e for e in filtered)
    assert re.search(r"label_values\([a-z_]+, namespace\)", variable["definition"])


def test_nothing_reads_the_label_that_a_scrape_without_honor_labels_would_make() -> None:
    texts = [a["expr"] + json.dumps(a["annotations"]) for a in ALERTS] + expressions(DASHBOARD)

    assert not [t for t in texts if "exported_namespace" in t]
