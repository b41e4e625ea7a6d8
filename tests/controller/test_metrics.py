from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from kubeopt.api.status import Condition, Phase, TargetMetrics, TargetStatus
from kubeopt.controller.metrics import METRIC_NAMES, Metrics


def test_metric_names_are_prefixed_and_unique() -> None:
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
    assert all(name.startswith("kubeopt_") for name in METRIC_NAMES)


def test_every_listed_name_is_exposed_on_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.jobs_created.labels(namespace="ml").inc()
    metrics.jobs_succeeded.labels(namespace="ml").inc()
    metrics.jobs_failed.labels(namespace="ml", reason="OOMKilled").inc()
    metrics.reconcile_errors.labels(namespace="ml").inc()
    metrics.reconcile_retries.labels(namespace="ml", cause="throttled").inc()
    metrics.job_duration.labels(namespace="ml").observe(42)
    metrics.record_targets("ml", "digits", [TargetStatus(
        name="ort", phase=Phase.SUCCEEDED,
        metrics=TargetMetrics(throughput="5000.0", latency_p50_ms="0.4", speedup="1.5", compile_seconds="7.2"))])
    metrics.record_conditions("ml", "digits", [Condition(type="Ready", status="True", reason="Succeeded")])

    text = generate_latest(registry).decode()

    for name in METRIC_NAMES:
        assert f"\n{name}" in text or text.startswith(name) or f"{name}_bucket" in text, name


def test_per_target_gauges_carry_namespace_name_and_target_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.record_targets("ml", "digits", [TargetStatus(
        name="ort", phase=Phase.SUCCEEDED,
        metrics=TargetMetrics(throughput="5000.0", latency_p50_ms="0.4", speedup="1.5", compile_seconds="7.2"))])

    labels = {"namespace": "ml", "name": "digits", "target": "ort"}
    assert registry.get_sample_value("kubeopt_target_throughput_samples_per_second", labels) == 5000.0
    assert registry.get_sample_value("kubeopt_target_latency_p50_seconds", labels) == 0.0004
    assert registry.get_sample_value("kubeopt_target_speedup_ratio", labels) == 1.5
    assert registry.get_sample_value("kubeopt_target_compile_seconds", labels) == 7.2


def test_forgetting_a_resource_drops_its_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_targets("ml", "digits", [TargetStatus(name="ort", phase=Phase.SUCCEEDED,
                                                         metrics=TargetMetrics(throughput="1.0"))])

    metrics.forget("ml", "digits")

    labels = {"namespace": "ml", "name": "digits", "target": "ort"}
    assert registry.get_sample_value("kubeopt_target_throughput_samples_per_second", labels) is None


CONDITION = "kubeopt_optimization_condition"


def _conditions(ready: str, reconciling: str, stalled: str, stall_reason: str) -> list[Condition]:
    ready_reason = "Succeeded" if ready == "True" else "Reconciling"
    reconciling_reason = "Progressing" if reconciling == "True" else "Idle"
    return [Condition(type="Ready", status=ready, reason=ready_reason),
            Condition(type="Reconciling", status=reconciling, reason=reconciling_reason),
            Condition(type="Stalled", status=stalled, reason=stall_reason)]


def _condition_series(registry: CollectorRegistry) -> dict[tuple[str, str, str, str], float]:
    return {(s.labels["namespace"], s.labels["name"], s.labels["condition"], s.labels["reason"]): s.value
            for metric in registry.collect() if metric.name == CONDITION for s in metric.samples}


def test_conditions_are_one_series_each_valued_one_when_true() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.record_conditions("ml", "gpu", _conditions("False", "False", "True", "Unschedulable"))

    assert _condition_series(registry) == {
        ("ml", "gpu", "Ready", "Reconciling"): 0.0,
        ("ml", "gpu", "Reconciling", "Idle"): 0.0,
        ("ml", "gpu", "Stalled", "Unschedulable"): 1.0,
    }


def test_a_changed_reason_replaces_the_conditions_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_conditions("ml", "gpu", _conditions("False", "True", "False", "NotStalled"))
    metrics.record_conditions("ml", "cpu", _conditions("False", "True", "False", "NotStalled"))

    metrics.record_conditions("ml", "gpu", _conditions("False", "False", "True", "Unschedulable"))
    metrics.record_conditions("ml", "gpu", _conditions("True", "False", "False", "NotStalled"))

    series = _condition_series(registry)
    assert {k: v for k, v in series.items() if k[1] == "gpu"} == {
        ("ml", "gpu", "Ready", "Succeeded"): 1.0,
        ("ml", "gpu", "Reconciling", "Idle"): 0.0,
        ("ml", "gpu", "Stalled", "NotStalled"): 0.0,
    }
    assert series[("ml", "cpu", "Reconciling", "Progressing")] == 1.0
    assert len(series) == 6


def test_only_the_three_kstatus_conditions_get_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.record_conditions("ml", "gpu", [Condition(type="Other", status="True", reason="X"),
                                            Condition(type="Stalled", status="True", reason="")])

    assert _condition_series(registry) == {("ml", "gpu", "Stalled", "Unknown"): 1.0}


def test_forgetting_a_resource_drops_its_condition_series_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_conditions("ml", "gpu", _conditions("False", "False", "True", "Unschedulable"))
    metrics.record_conditions("ml", "cpu", _conditions("True", "False", "False", "NotStalled"))

    metrics.forget("ml", "gpu")

    assert {k[1] for k in _condition_series(registry)} == {"cpu"}
    # Recorded again after forgetting (a resource of the same name): no stale reason lingers.
    metrics.record_conditions("ml", "gpu", _conditions("False", "True", "False", "NotStalled"))
    assert _condition_series(registry)[("ml", "gpu", "Stalled", "NotStalled")] == 0.0
    assert len(_condition_series(registry)) == 6


def test_optimizations_are_counted_by_phase() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.set_phases({"Running": 2, "Succeeded": 1})

    assert registry.get_sample_value("kubeopt_optimizations", {"phase": "Running"}) == 2
    assert registry.get_sample_value("kubeopt_optimizations", {"phase": "Failed"}) == 0


def test_metrics_never_touch_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    Metrics(CollectorRegistry())

    assert set(REGISTRY._names_to_collectors) == before
