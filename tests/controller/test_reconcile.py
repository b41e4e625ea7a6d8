"""The reconciler against a recording cluster: what it creates, writes and announces."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kubeopt.controller.jobs import JobRejected
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.plan import expected_names
from kubeopt.controller.reconcile import Reconciler, View
from kubeopt.controller.settings import OperatorSettings

from .conftest import cond, job, owner, parsed, pod, spec_dict, summary_text


@dataclass
class RecordingCluster:
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    patched: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # target name -> the API server's message
    attempts: list[str] = field(default_factory=list)

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        self.attempts.append(job["metadata"]["name"])
        target = job["metadata"]["labels"]["kubeopt.io/target"]
        if target in self.refuse:
            raise JobRejected(job["metadata"]["name"], 422, self.refuse[target])
        self.created.append(job["metadata"]["name"])
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.patched.append((name, spec))

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        self.events.append((reason, message, warning))


def _body(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "digits", "namespace": "ml", "generation": generation, "uid": "u1"},
            "spec": spec_dict(**spec)}


def _reconciler() -> tuple[Reconciler, RecordingCluster, CollectorRegistry]:
    cluster, registry = RecordingCluster(), CollectorRegistry()
    return Reconciler(OperatorSettings(), Metrics(registry), cluster, now=lambda: "now"), cluster, registry


def test_first_reconcile_creates_jobs_up_to_parallelism_and_reports_reconciling() -> None:
    reconciler, cluster, _ = _reconciler()

    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=[], pods_by_job={}))

    assert len(cluster.created) == 1
    status = cluster.statuses[-1]
    assert [t["phase"] for t in status["targets"]] == ["Pending", "Pending"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Reconciling"] == "True"
    assert ("JobCreated", f"target ort-fp32: created Job {cluster.created[0]}", False) in cluster.events
    assert [reason for reason, _, _ in cluster.events] == ["JobCreated"]  # Pending is not an event


def test_the_jobs_one_reconcile_creates_are_announced_in_one_event_naming_each() -> None:
    reconciler, cluster, _ = _reconciler()

    reconciler.reconcile("u1", lambda: View(body=_body(parallelism=2), jobs=[], pods_by_job={}))

    assert len(cluster.created) == 2
    assert cluster.events == [("JobCreated", f"created Jobs {cluster.created[0]} (target ort-fp32), "
                                             f"{cluster.created[1]} (target trt-fp16)", False)]


class FailsOnSecondJob(RecordingCluster):
    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        if self.created:
            raise ConnectionError("the API server went away")
        return super().create_job(owner_body, job)


def test_a_job_created_before_a_later_create_failed_is_still_announced() -> None:
    cluster = FailsOnSecondJob()
    reconciler = Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), cluster, now=lambda: "now")

    with pytest.raises(ConnectionError):
        reconciler.reconcile("u1", lambda: View(body=_body(parallelism=2), jobs=[], pods_by_job={}))

    assert cluster.events == [("JobCreated", f"target ort-fp32: created Job {cluster.created[0]}", False)]


def test_a_second_reconcile_before_the_watch_sees_the_job_creates_nothing_more() -> None:
    reconciler, cluster, _ = _reconciler()
    view = View(body=_body(), jobs=[], pods_by_job={})

    reconciler.reconcile("u1", lambda: view)
    reconciler.reconcile("u1", lambda: view)

    assert len(cluster.created) == 1


def test_finished_jobs_make_the_resource_ready_with_a_best_target_and_metrics() -> None:
    reconciler, cluster, registry = _reconciler()
    o = owner()
    names = expected_names(o, parsed(o))
    jobs = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1),
            job(names["trt-fp16"], conditions=[cond("Failed", "PodFailurePolicy")], failed=1)]
    pods = {names["ort-fp32"]: [pod(exit_code=0, message=summary_text("ort-fp32", speedup=2.0))],
            names["trt-fp16"]: [pod(exit_code=16, message="backend tensorrt not available in this image")]}

    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=jobs, pods_by_job=pods))

    status = cluster.statuses[-1]
    assert status["phase"] == "Succeeded"
    assert (status["bestTarget"], status["bestSpeedup"]) == ("ort-fp32", "2.0")
    assert status["targets"][1]["reason"] == "BackendUnavailable"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert registry.get_sample_value("kubeopt_target_jobs_succeeded_total", {"namespace": "ml"}) == 1
    assert registry.get_sample_value("kubeopt_target_jobs_failed_total",
                                     {"namespace": "ml", "reason": "BackendUnavailable"}) == 1
    assert any(reason == "TargetFailed" and warning for reason, _, warning in cluster.events)


def test_the_by_phase_gauge_moves_each_resource_as_its_phase_changes_and_drops_it_when_deleted() -> None:
    reconciler, _, registry = _reconciler()
    o = owner()
    names = expected_names(o, parsed(o))
    finished = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1),
                job(names["trt-fp16"], conditions=[cond("Complete")], succeeded=1)]
    pods = {n: [pod(exit_code=0, message=summary_text(t, speedup=2.0))] for t, n in names.items()}

    def by_phase() -> dict[str, float | None]:
        return {p: registry.get_sample_value("kubeopt_optimizations", {"phase": p})
                for p in ("Pending", "Succeeded")}

    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=[], pods_by_job={}))
    other = {**_body(), "metadata": {**_body()["metadata"], "name": "other", "uid": "u2"}}
    reconciler.reconcile("u2", lambda: View(body=other, jobs=[], pods_by_job={}))
    both_pending = by_phase()
    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=finished, pods_by_job=pods))
    one_succeeded = by_phase()
    reconciler.forget("u1", "ml", "digits")

    assert both_pending == {"Pending": 2, "Succeeded": 0}
    assert one_succeeded == {"Pending": 1, "Succeeded": 1}
    assert by_phase() == {"Pending": 1, "Succeeded": 0}


def test_an_unchanged_status_is_not_written_again() -> None:
    reconciler, cluster, _ = _reconciler()
    view = View(body=_body(), jobs=[], pods_by_job={})

    reconciler.reconcile("u1", lambda: view)
    reconciler.reconcile("u1", lambda: view)

    assert len(cluster.statuses) == 1


def test_a_change_of_the_work_deletes_old_running_jobs_and_clears_the_best() -> None:
    reconciler, cluster, _ = _reconciler()
    o = owner()
    old = expected_names(o, parsed(o))["ort-fp32"]
    body = _body(generation=2, benchmark={"iterations": 20})

    reconciler.reconcile("u1", lambda: View(body=body, jobs=[job(old, active=1)], pods_by_job={}))

    assert cluster.deleted == [old]
    assert cluster.created and old not in cluster.created
    status = cluster.statuses[-1]
    assert status["observedGeneration"] == 2
    assert status["best"] is None and status["bestTarget"] is None


def test_an_invalid_stored_spec_stalls_with_invalid_spec() -> None:
    reconciler, cluster, _ = _reconciler()
    body = _body()
    body["spec"]["targets"] = [{"name": "ort", "backend": "onnxruntime", "precision": "int8"}]

    reconciler.reconcile("u1", lambda: View(body=body, jobs=[], pods_by_job={}))

    stalled = {c["type"]: c for c in cluster.statuses[-1]["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "calibration" in stalled["message"]
    assert cluster.created == []


def test_the_condition_gauge_follows_the_written_conditions_and_goes_when_forgotten() -> None:
    reconciler, _, registry = _reconciler()
    invalid = _body()
    invalid["spec"]["targets"] = [{"name": "ort", "backend": "onnxruntime", "precision": "int8"}]
    gauge = "kubeopt_optimization_condition"

    def value(condition: str, reason: str) -> float | None:
        labels = {"namespace": "ml", "name": "digits", "condition": condition, "reason": reason}
        return registry.get_sample_value(gauge, labels)

    reconciler.reconcile("u1", lambda: View(body=invalid, jobs=[], pods_by_job={}))
    assert value("Stalled", "InvalidSpec") == 1
    assert value("Ready", "InvalidSpec") == 0

    reconciler.reconcile("u1", lambda: View(body=_body(generation=2), jobs=[], pods_by_job={}))
    assert value("Stalled", "InvalidSpec") is None
    assert value("Stalled", "NotStalled") == 0
    assert value("Reconciling", "Progressing") == 1

    reconciler.forget("u1", "ml", "digits")
    assert not [s for m in registry.collect() if m.name == gauge for s in m.samples]


def test_a_resource_gone_from_the_index_is_left_alone() -> None:
    reconciler, cluster, _ = _reconciler()

    reconciler.reconcile("u1", lambda: None)

    assert cluster.statuses == [] and cluster.created == []


def test_a_resource_being_deleted_gets_no_new_job_no_status_and_no_event() -> None:
    reconciler, cluster, _ = _reconciler()
    body = _body()
    body["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"  # a foreground deletion waits for its Jobs

    reconciler.reconcile("u1", lambda: View(body=body, jobs=[], pods_by_job={}))

    assert cluster.created == [] and cluster.statuses == [] and cluster.events == []


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    return {c["type"]: (c["status"], c["reason"], c["observedGeneration"]) for c in status["conditions"]}


def test_suspending_suspends_the_running_job_and_keeps_it() -> None:
    reconciler, cluster, _ = _reconciler()
    o = owner()
    name = expected_names(o, parsed(o))["ort-fp32"]
    body = _body(generation=2, suspend=True)

    reconciler.reconcile("u1", lambda: View(body=body, jobs=[job(name, active=1)], pods_by_job={}))

    assert (cluster.created, cluster.deleted) == ([], [])
    assert cluster.patched == [(name, {"suspend": True})]
    status = cluster.statuses[-1]
    assert (status["phase"], status["observedGeneration"]) == ("Suspended", 2)
    assert status["targets"][0]["jobName"] == name
    got = _conditions(status)
    assert got["Ready"] == ("False", "Suspended", 2)
    assert got["Reconciling"] == ("False", "Suspended", 2)
    assert got["Stalled"][0] == "False"
    assert any(reason == "JobSuspended" and name in message for reason, message, _ in cluster.events)


def test_resuming_resumes_the_same_job_and_starts_nothing_new() -> None:
    reconciler, cluster, _ = _reconciler()
    o = owner()
    name = expected_names(o, parsed(o))["ort-fp32"]
    held = job(name, suspend=True, conditions=[cond("Suspended")])

    reconciler.reconcile("u1", lambda: View(body=_body(generation=3), jobs=[held], pods_by_job={}))

    assert (cluster.created, cluster.deleted) == ([], [])
    assert cluster.patched == [(name, {"suspend": False})]
    assert _conditions(cluster.statuses[-1])["Reconciling"] == ("True", "Progressing", 3)


def test_a_parallelism_change_keeps_the_jobs_and_starts_the_next_target() -> None:
    reconciler, cluster, _ = _reconciler()
    o = owner()
    names = expected_names(o, parsed(o))

    reconciler.reconcile("u1", lambda: View(body=_body(generation=2, parallelism=2),
                                                         jobs=[job(names["ort-fp32"], active=1)], pods_by_job={}))

    assert cluster.deleted == []
    assert cluster.created == [names["trt-fp16"]]


def test_a_result_recorded_before_a_generation_that_keeps_the_work_stays_and_is_not_counted_again() -> None:
    reconciler, cluster, registry = _reconciler()
    o = owner()
    names = expected_names(o, parsed(o))
    finished = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1)]
    pods = {names["ort-fp32"]: [pod(exit_code=0, message=summary_text("ort-fp32", speedup=2.0))]}
    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=finished, pods_by_job=pods))

    # generation 2 only sets a TTL; the finished Job is then removed by it.
    reconciler.reconcile("u1", lambda: View(body=_body(generation=2, ttlSecondsAfterFinished=0),
                                                         jobs=[], pods_by_job={}))

    status = cluster.statuses[-1]
    assert status["observedGeneration"] == 2
    assert status["targets"][0]["phase"] == "Succeeded" and status["targets"][0]["jobName"] == names["ort-fp32"]
    assert status["bestTarget"] == "ort-fp32"
    assert names["ort-fp32"] not in cluster.created
    assert registry.get_sample_value("kubeopt_target_jobs_succeeded_total", {"namespace": "ml"}) == 1
    assert [reason for reason, _, _ in cluster.events].count("TargetSucceeded") == 1


REFUSAL = ("ValidatingAdmissionPolicy 'kubeopt-operator-jobs' with binding 'kubeopt-operator-jobs' denied "
           "request: spec.template.spec.containers[0].image: evil:1 is not under an allowed prefix")


def _refusing(*targets: str) -> tuple[Reconciler, RecordingCluster]:
    reconciler, cluster, _ = _reconciler()
    cluster.refuse = {target: REFUSAL for target in targets}
    return reconciler, cluster


def test_a_job_the_api_server_refuses_fails_its_target_with_the_servers_message_and_a_warning() -> None:
    reconciler, cluster = _refusing("ort-fp32")

    reconciler.reconcile(("ml", "digits"), lambda: View(body=_body(), jobs=[], pods_by_job={}))

    refused = cluster.statuses[-1]["targets"][0]
    assert (refused["phase"], refused["reason"]) == ("Failed", "JobRejected")
    assert REFUSAL in refused["message"]
    assert ("JobRejected", f"target ort-fp32: {refused['message']}", True) in cluster.events


def test_a_refused_job_is_not_tried_again_by_later_reconciles() -> None:
    reconciler, cluster = _refusing("ort-fp32")
    view = View(body=_body(), jobs=[], pods_by_job={})

    for _ in range(3):
        reconciler.reconcile(("ml", "digits"), lambda: view)

    o = owner()
    refused_name = expected_names(o, parsed(o))["ort-fp32"]
    assert cluster.attempts.count(refused_name) == 1
    assert sum(1 for reason, _, _ in cluster.events if reason == "JobRejected") == 1


def test_a_refused_jobs_slot_goes_to_the_next_target_in_the_same_reconcile() -> None:
    reconciler, cluster = _refusing("ort-fp32")

    reconciler.reconcile(("ml", "digits"), lambda: View(body=_body(), jobs=[], pods_by_job={}))

    o = owner()
    assert cluster.created == [expected_names(o, parsed(o))["trt-fp16"]]  # parallelism 1


def test_every_job_refused_stalls_the_resource_with_reason_job_rejected() -> None:
    reconciler, cluster = _refusing("ort-fp32", "trt-fp16")

    reconciler.reconcile(("ml", "digits"), lambda: View(body=_body(), jobs=[], pods_by_job={}))

    status = cluster.statuses[-1]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert (status["phase"], stalled["status"], stalled["reason"]) == ("Failed", "True", "JobRejected")
    assert "not under an allowed prefix" in stalled["message"]
    assert cluster.created == []


def test_a_resource_deleted_and_created_again_under_its_name_is_another_resource() -> None:
    reconciler, cluster, _ = _reconciler()
    view = View(body=_body(), jobs=[], pods_by_job={})
    reconciler.reconcile("u1", lambda: view)
    again = _body()
    again["metadata"]["uid"] = "u2"

    reconciler.reconcile("u2", lambda: View(body=again, jobs=[], pods_by_job={}))

    assert len(cluster.created) == 2  # the first one's in-flight Job is not the second one's
    assert len(cluster.statuses) == 2


def test_the_old_resources_deletion_keeps_the_series_of_a_new_one_of_the_same_name() -> None:
    reconciler, _, registry = _reconciler()
    reconciler.reconcile("u1", lambda: View(body=_body(), jobs=[], pods_by_job={}))
    reconciler.reconcile("u2", lambda: View(body=_body(), jobs=[], pods_by_job={}))

    reconciler.forget("u1", "ml", "digits")

    labels = {"namespace": "ml", "name": "digits", "condition": "Reconciling", "reason": "Progressing"}
    assert registry.get_sample_value("kubeopt_optimization_condition", labels) == 1
    reconciler.forget("u2", "ml", "digits")
    assert registry.get_sample_value("kubeopt_optimization_condition", labels) is None


@dataclass
class ThrottledOnce(RecordingCluster):
    refusals: int = 1

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.refusals:
            self.refusals -= 1
            raise RuntimeError("429 Too Many Requests")
        super().patch_status(namespace, name, status)


def test_a_transition_is_announced_once_after_its_status_is_written_even_when_a_write_failed_first() -> None:
    cluster, registry = ThrottledOnce(), CollectorRegistry()
    reconciler = Reconciler(OperatorSettings(), Metrics(registry), cluster, now=lambda: "now")
    o = owner()
    names = expected_names(o, parsed(o))
    jobs = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1)]
    pods = {names["ort-fp32"]: [pod(exit_code=0, message=summary_text("ort-fp32"))]}
    view = View(body=_body(), jobs=jobs, pods_by_job=pods)

    with contextlib.suppress(RuntimeError):
        reconciler.reconcile("u1", lambda: view)
    announced_before_the_write = [reason for reason, _, _ in cluster.events if reason.startswith("Target")]
    reconciler.reconcile("u1", lambda: view)

    assert announced_before_the_write == []
    assert [reason for reason, _, _ in cluster.events].count("TargetSucceeded") == 1
    assert cluster.statuses[-1]["targets"][0]["phase"] == "Succeeded"
    assert registry.get_sample_value("kubeopt_reconcile_errors_total", {"namespace": "ml"}) == 1


def test_a_253_character_name_reaches_its_status_through_the_uid() -> None:
    reconciler, cluster, _ = _reconciler()
    body = _body()
    body["metadata"]["name"] = ("d" * 63 + ".") * 3 + "d" * 61
    o = owner(name=body["metadata"]["name"])
    names = expected_names(o, parsed(o))
    jobs = [job(names["ort-fp32"], conditions=[cond("Complete")], succeeded=1),
            job(names["trt-fp16"], conditions=[cond("Complete")], succeeded=1)]
    pods = {names["ort-fp32"]: [pod(exit_code=0, message=summary_text("ort-fp32"))],
            names["trt-fp16"]: [pod(exit_code=0, message=summary_text("trt-fp16"))]}

    reconciler.reconcile("u1", lambda: View(body=body, jobs=jobs, pods_by_job=pods))

    assert len(body["metadata"]["name"]) == 253
    assert all(len(n) <= 63 for n in names.values())
    assert cluster.statuses[-1]["phase"] == "Succeeded"


# -- one thread per resource: calls during a reconcile coalesce into one more pass ---------------

class SlowStatusCluster(RecordingCluster):
    """Holds the first status write until released, as a slow or throttled API server would."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.release = threading.Event()

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if not self.writing.is_set():
            self.writing.set()
            assert self.release.wait(10), "the test never released the write"
        super().patch_status(namespace, name, status)


def test_calls_during_a_slow_reconcile_return_at_once_and_one_more_pass_reads_the_newest_view() -> None:
    cluster = SlowStatusCluster()
    reconciler = Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), cluster, now=lambda: "now")
    views = [View(body=_body(), jobs=[], pods_by_job={})]
    first = threading.Thread(target=reconciler.reconcile, args=("u1", lambda: views[-1]))
    first.start()
    assert cluster.writing.wait(10)

    started = time.monotonic()
    for _ in range(20):  # a burst of pod and Job events while the first write hangs
        reconciler.reconcile("u1", lambda: views[-1])
    returned_in = time.monotonic() - started
    views.append(View(body=_body(), jobs=[job(cluster.created[0], active=1)], pods_by_job={}))
    cluster.release.set()
    first.join(10)

    assert returned_in < 1.0  # none of the 20 waited for the first
    assert not first.is_alive()
    assert len(cluster.statuses) == 2  # the first pass, then one more for all 20 calls
    assert len(cluster.created) == 1


def test_a_failed_reconcile_leaves_the_resource_free_for_the_next_call() -> None:
    class FailingOnce(RecordingCluster):
        failed = False

        def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("the API server went away")
            super().patch_status(namespace, name, status)

    cluster = FailingOnce()
    reconciler = Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), cluster, now=lambda: "now")
    view = View(body=_body(), jobs=[], pods_by_job={})

    with contextlib.suppress(RuntimeError):
        reconciler.reconcile("u1", lambda: view)
    reconciler.reconcile("u1", lambda: view)

    assert len(cluster.statuses) == 1
