from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from kubeopt.api.status import Phase, TargetMetrics, TargetStatus
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
    metrics.job_duration.labels(namespace="ml").observe(42)
    metrics.record_targets("ml", "digits", [TargetStatus(
        name="ort", phase=Phase.SUCCEEDED,
        metrics=TargetMetrics(throughput="5000.0", latency_p50_ms="0.4", speedup="1.5"))])

    text = generate_latest(registry).decode()

    for name in METRIC_NAMES:
        assert f"\n{name}" in text or text.startswith(name) or f"{name}_bucket" in text, name


def test_per_target_gauges_carry_namespace_name_and_target_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.record_targets("ml", "digits", [TargetStatus(
        name="ort", phase=Phase.SUCCEEDED,
        metrics=TargetMetrics(throughput="5000.0", latency_p50_ms="0.4", speedup="1.5"))])

    labels = {"namespace": "ml", "name": "digits", "target": "ort"}
    assert registry.get_sample_value("kubeopt_target_throughput_samples_per_second", labels) == 5000.0
    assert registry.get_sample_value("kubeopt_target_latency_p50_seconds", labels) == 0.0004
    assert registry.get_sample_value("kubeopt_target_speedup_ratio", labels) == 1.5


def test_forgetting_a_resource_drops_its_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_targets("ml", "digits", [TargetStatus(name="ort", phase=Phase.SUCCEEDED,
                                                         metrics=TargetMetrics(throughput="1.0"))])

    metrics.forget("ml", "digits")

    labels = {"namespace": "ml", "name": "digits", "target": "ort"}
    assert registry.get_sample_value("kubeopt_target_throughput_samples_per_second", labels) is None


def test_optimizations_are_counted_by_phase() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    metrics.set_phases(["Running", "Running", "Succeeded"])

    assert registry.get_sample_value("kubeopt_optimizations", {"phase": "Running"}) == 2
    assert registry.get_sample_value("kubeopt_optimizations", {"phase": "Failed"}) == 0


def test_metrics_never_touch_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    Metrics(CollectorRegistry())

    assert set(REGISTRY._names_to_collectors) == before
