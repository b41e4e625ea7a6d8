"""The alert rules the chart ships: names from the registry, checked and unit-tested by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubeopt.controller.dashboard import referenced_metrics, series_names
from tests.ci import missing_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "kubeopt" / "rules" / "kubeopt.rules.yaml"
RULE_TESTS = RULES.with_name("kubeopt.rules.test.yaml")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).is_file():
        missing_tool("promtool is not installed: run e2e/install-debian-tools.sh (Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_group_holds_the_alerts_for_errors_failures_stalls_and_absence() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]

    assert [g["name"] for g in groups] == ["kubeopt"]
    assert {r["alert"] for r in rules()} == {"KubeoptReconcileErrors", "KubeoptTargetJobsFailing",
                                             "KubeoptOptimizationFailed", "KubeoptOptimizationStalled",
                                             "KubeoptMetricsAbsent"}
    assert all(r["labels"]["severity"] and r["annotations"]["summary"] for r in rules())


def test_every_rule_names_only_series_of_the_registry() -> None:
    known = series_names()

    for rule in rules():
        names = referenced_metrics(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)


def test_promtool_check_rules_accepts_the_file() -> None:
    result = promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_fire_every_alert() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]

    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}

    assert fired == {r["alert"] for r in rules()}


def test_a_broken_rule_fails_promtool(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text(RULES.read_text().replace("rate(kubeopt_reconcile_errors_total[5m])",
                                                "rate(kubeopt_reconcile_errors_total)"))

    result = promtool("check", "rules", str(broken))

    assert result.returncode != 0
