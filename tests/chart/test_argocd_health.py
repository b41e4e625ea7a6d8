"""The chart's Argo CD health check (charts/kubeopt/argocd/.../health.lua), run as Argo CD runs it.

e2e/argocd-health is a small Go program on gopher-lua, the Lua VM Argo CD embeds, that loads
health.lua with Argo CD's conventions (the resource as global ``obj``, a returned
{status, message} table, no libraries beyond base/table/package) and checks every case of
health_test.yaml, Argo CD's own test layout. The testdata are not written by hand: each is the
status the Reconciler writes for a resource in that state (a recording cluster, as in
tests/controller), so the script is checked against what the operator really reports.
Regenerate them after a change of the operator's messages with
``PYTHONPATH=operator python -m tests.chart.test_argocd_health``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from kubeopt.controller.metrics import Metrics
from kubeopt.controller.plan import expected_names
from kubeopt.controller.reconcile import Reconciler, View
from kubeopt.controller.settings import OperatorSettings
from tests.ci import missing_tool
from tests.controller.conftest import cond, job, owner, parsed, pod, spec_dict, summary_text

ROOT = Path(__file__).resolve().parents[2]
HEALTH_DIR = ROOT / "charts" / "kubeopt" / "argocd" / "kubeopt.io" / "ModelOptimization"
BUILD = ROOT / "e2e" / "argocd-health" / "build.sh"
NOW = "2026-11-29T12:00:00Z"


@dataclass
class _StatusCluster:
    """Keeps the last status the reconciler writes; Jobs and events are accepted and dropped."""

    statuses: list[dict[str, Any]] = field(default_factory=list)

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        pass

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        pass

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        pass


def _resource(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "digits", "namespace": "ml", "generation": generation, "uid": "u1"},
            "spec": spec_dict(**spec)}


def _without_nulls(value: Any) -> Any:
    """What the API server stores after a merge patch: a null removes the field."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _reconciled(body: dict[str, Any], jobs: list[dict[str, Any]], pods: dict[str, list[dict[str, Any]]]
                ) -> dict[str, Any]:
    cluster = _StatusCluster()
    reconciler = Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), cluster, now=lambda: NOW)
    reconciler.reconcile("u1", lambda: View(body=body, jobs=jobs, pods_by_job=pods))
    assert cluster.statuses, "the reconciler wrote no status"
    return {**body, "status": _without_nulls(cluster.statuses[-1])}


def _names() -> dict[str, str]:
    o = owner()
    return expected_names(o, parsed(o))


def no_status() -> dict[str, Any]:
    return _resource()


def progressing() -> dict[str, Any]:
    names = _names()
    return _reconciled(_resource(), [job(names["ort-fp32"], active=1)], {})


def healthy() -> dict[str, Any]:
    names = _names()
    jobs = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1),
            job(names["trt-fp16"], conditions=[cond("Failed", "PodFailurePolicy")], failed=1)]
    pods = {names["ort-fp32"]: [pod(exit_code=0, message=summary_text("ort-fp32", speedup=2.0))],
            names["trt-fp16"]: [pod(exit_code=16, message="backend tensorrt not available in this image")]}
    return _reconciled(_resource(), jobs, pods)


def degraded() -> dict[str, Any]:
    names = _names()
    jobs = [job(n, conditions=[cond("Failed", "PodFailurePolicy")], failed=1) for n in names.values()]
    pods = {n: [pod(exit_code=16, message="backend not available in this image")] for n in names.values()}
    return _reconciled(_resource(), jobs, pods)


def suspended() -> dict[str, Any]:
    names = _names()
    body = _resource(suspend=True)
    return _reconciled(body, [job(names["ort-fp32"], suspend=True, conditions=[cond("Suspended")])], {})


def stale() -> dict[str, Any]:
    """Healthy for generation 1, but the spec has changed since (generation 2) and the operator has not
    written again yet."""
    resource = healthy()
    resource["metadata"]["generation"] = 2
    return resource


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "no-status.yaml": no_status, "progressing.yaml": progressing, "healthy.yaml": healthy,
    "degraded.yaml": degraded, "suspended.yaml": suspended, "stale.yaml": stale,
}


def write_testdata(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in CASES.items():
        (directory / name).write_text(yaml.safe_dump(make(), sort_keys=False))


@pytest.fixture(scope="module")
def runner() -> Path:
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        missing_tool("go is not installed: e2e/argocd-health (gopher-lua, as Argo CD runs health.lua) needs it")
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, f"{BUILD} failed:\n{built.stderr}"
    return Path(built.stdout.strip().splitlines()[-1])


def _run(runner: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(runner), str(directory)], capture_output=True, text=True, timeout=60, check=False)


def _expected() -> dict[str, dict[str, str]]:
    tests = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())["tests"]
    return {Path(t["inputPath"]).name: t["healthStatus"] for t in tests}


def test_every_case_of_health_test_yaml_passes_under_gopher_lua(runner: Path) -> None:
    result = _run(runner, HEALTH_DIR)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CASES)}/{len(CASES)} cases passed" in result.stdout
    assert {s["status"] for s in _expected().values()} == {"Progressing", "Healthy", "Degraded", "Suspended"}


def test_the_testdata_are_the_statuses_the_reconciler_writes() -> None:
    assert set(_expected()) == set(CASES), "health_test.yaml and CASES name different files"
    for name, make in CASES.items():
        stored = yaml.safe_load((HEALTH_DIR / "testdata" / name).read_text())
        assert stored == make(), (f"testdata/{name} is not what the operator writes now; regenerate with "
                                  "`PYTHONPATH=operator python -m tests.chart.test_argocd_health` and check "
                                  "health_test.yaml's messages")


def test_the_health_check_reads_freshly_reconciled_statuses_as_expected(runner: Path, tmp_path: Path) -> None:
    shutil.copy(HEALTH_DIR / "health.lua", tmp_path)
    shutil.copy(HEALTH_DIR / "health_test.yaml", tmp_path)
    write_testdata(tmp_path / "testdata")

    result = _run(runner, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_runner(runner: Path, tmp_path: Path) -> None:
    shutil.copy(HEALTH_DIR / "health.lua", tmp_path)
    write_testdata(tmp_path / "testdata")
    (tmp_path / "health_test.yaml").write_text(yaml.safe_dump({"tests": [
        {"healthStatus": {"status": "Healthy", "message": "anything"}, "inputPath": "testdata/no-status.yaml"}]}))

    result = _run(runner, tmp_path)

    assert result.returncode == 1
    assert "FAIL testdata/no-status.yaml: got Progressing" in result.stdout


if __name__ == "__main__":
    write_testdata(HEALTH_DIR / "testdata")
    print(f"wrote {len(CASES)} files to {HEALTH_DIR / 'testdata'}")
