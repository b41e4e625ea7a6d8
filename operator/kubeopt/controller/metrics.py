"""The operator's Prometheus metrics: every name in one place, on a registry passed in.

A Grafana dashboard and alert rules can be generated from ``METRIC_NAMES``. Labels are bounded
to namespace, name and target (and phase, a closed set), never a Job name or a generation. The
per-resource condition gauge adds condition (Ready, Reconciling, Stalled) and reason: only the
current reason of each condition has a series, so a resource has three of them.

The per-resource gauges (conditions, each target's figures) are ``ResourceSeries``: rows in
one table per metric, turned into samples when Prometheus scrapes. A ``Gauge`` child (object,
lock, value holder) cost about 770 bytes a series, three per resource at least and eleven once
two targets succeeded, kept for every resource the operator knows; a resource's three condition
rows take 540 bytes together (tracemalloc, 1,000 resources).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kubeopt.api.status import Condition, Phase, TargetStatus
from kubeopt.controller.conditions import READY, RECONCILING, STALLED

PREFIX = "kubeopt"
OPTIMIZATIONS = f"{PREFIX}_optimizations"
JOBS_CREATED = f"{PREFIX}_target_jobs_created"
JOBS_SUCCEEDED = f"{PREFIX}_target_jobs_succeeded"
JOBS_FAILED = f"{PREFIX}_target_jobs_failed"
RECONCILE_ERRORS = f"{PREFIX}_reconcile_errors"
RECONCILE_RETRIES = f"{PREFIX}_reconcile_retries"
JOB_DURATION = f"{PREFIX}_target_job_duration_seconds"
THROUGHPUT = f"{PREFIX}_target_throughput_samples_per_second"
LATENCY_P50 = f"{PREFIX}_target_latency_p50_seconds"
SPEEDUP = f"{PREFIX}_target_speedup_ratio"
COMPILE = f"{PREFIX}_target_compile_seconds"
CONDITION = f"{PREFIX}_optimization_condition"

#: Names as exposed (counters gain ``_total``), for dashboards and drift checks.
METRIC_NAMES: tuple[str, ...] = (
    OPTIMIZATIONS, f"{JOBS_CREATED}_total", f"{JOBS_SUCCEEDED}_total", f"{JOBS_FAILED}_total",
    f"{RECONCILE_ERRORS}_total", f"{RECONCILE_RETRIES}_total", JOB_DURATION, THROUGHPUT, LATENCY_P50, SPEEDUP,
    COMPILE, CONDITION,
)

TARGET_LABELS = ("namespace", "name", "target")
CONDITION_LABELS = ("namespace", "name", "condition", "reason")
#: The kstatus conditions the operator writes (kubeopt.controller.conditions); no other type gets a series.
CONDITION_TYPES: tuple[str, ...] = (READY, RECONCILING, STALLED)
DURATION_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))


class ResourceSeries(Collector):
    """A gauge with one small row per series of a resource: (namespace, name) -> {key: (the
    other label values, value)}, where ``key`` is the third label (target or condition).
    Setting a key replaces its row, whatever the other labels were (a condition's new reason
    replaces its series); forgetting a resource drops its rows."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._rows: dict[tuple[str, str], dict[str, tuple[tuple[str, ...], float]]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, namespace: str, name: str, key: str, value: float, *others: str) -> None:
        with self._lock:
            self._rows.setdefault((namespace, name), {})[key] = (others, value)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._rows.pop((namespace, name), None)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:
            rows = [(resource, key, row) for resource, keyed in self._rows.items() for key, row in keyed.items()]
        for (namespace, name), key, (others, value) in rows:
            family.add_metric([namespace, name, key, *others], value)
        yield family


class Metrics:
    """The operator's metrics, registered on ``registry`` (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.optimizations = Gauge(OPTIMIZATIONS, "ModelOptimizations by phase.", ["phase"], registry=registry)
        self.jobs_created = Counter(JOBS_CREATED, "Target Jobs created.", ["namespace"], registry=registry)
        self.jobs_succeeded = Counter(JOBS_SUCCEEDED, "Target Jobs that succeeded.", ["namespace"], registry=registry)
        self.jobs_failed = Counter(JOBS_FAILED, "Target Jobs that failed, by reason.", ["namespace", "reason"],
                                   registry=registry)
        self.reconcile_errors = Counter(RECONCILE_ERRORS, "Reconciliations that raised.", ["namespace"],
                                        registry=registry)
        self.reconcile_retries = Counter(RECONCILE_RETRIES, "Failed reconciliations that kopf retries, by cause: "
                                         "throttled (429, after its Retry-After) or error.",
                                         ["namespace", "cause"],
                                         registry=registry)
        self.job_duration = Histogram(JOB_DURATION, "Target Job duration from start to completion.",
                                      ["namespace"], buckets=DURATION_BUCKETS, registry=registry)
        self.throughput = ResourceSeries(THROUGHPUT, "Throughput at the selection batch size.", TARGET_LABELS,
                                         registry)
        self.latency_p50 = ResourceSeries(LATENCY_P50, "Median latency at the selection batch size.", TARGET_LABELS,
                                          registry)
        self.speedup = ResourceSeries(SPEEDUP, "Throughput over the baseline measured in the same Job.",
                                      TARGET_LABELS, registry)
        self.compile_seconds = ResourceSeries(COMPILE, "Seconds the target's build took: for torch-compile the first "
                                              "call per batch size (Dynamo, Inductor, autotuning, cuDNN's algorithm "
                                              "search).", TARGET_LABELS, registry)
        self.condition = ResourceSeries(CONDITION, "A ModelOptimization's condition: 1 when True, else 0; "
                                        "labelled with its current reason.", CONDITION_LABELS, registry)
        for phase in Phase:
            self.optimizations.labels(phase=phase.value).set(0)

    def set_phases(self, counts: Mapping[str, int]) -> None:
        """Set the by-phase gauge from how many resources are in each phase (a phase not named: 0)."""
        for phase, count in {**{phase.value: 0 for phase in Phase}, **counts}.items():
            self.optimizations.labels(phase=phase).set(count)

    def record_targets(self, namespace: str, name: str, targets: Iterable[TargetStatus]) -> None:
        """Publish each succeeded target's figures."""
        for target in targets:
            if target.phase is not Phase.SUCCEEDED or target.metrics is None:
                continue
            m = target.metrics
            if m.throughput is not None:
                self.throughput.set(namespace, name, target.name, float(m.throughput))
            if m.latency_p50_ms is not None:
                self.latency_p50.set(namespace, name, target.name, float(m.latency_p50_ms) / 1000.0)
            if m.speedup is not None:
                self.speedup.set(namespace, name, target.name, float(m.speedup))
            if m.compile_seconds is not None:
                self.compile_seconds.set(namespace, name, target.name, float(m.compile_seconds))

    def record_conditions(self, namespace: str, name: str, conditions: Iterable[Condition]) -> None:
        """Publish the resource's Ready, Reconciling and Stalled; a changed reason replaces its series."""
        for condition in conditions:
            if condition.type in CONDITION_TYPES:
                self.condition.set(namespace, name, condition.type, 1 if condition.status == "True" else 0,
                                   condition.reason or "Unknown")

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted resource's per-target and per-condition series."""
        for series in (self.throughput, self.latency_p50, self.speedup, self.compile_seconds, self.condition):
            series.forget(namespace, name)
