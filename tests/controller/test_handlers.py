"""The handlers' matching (by UID, never by a name read from a label) and their retry plumbing."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from kubeopt.controller.handlers import (
    GIVE_UP_AFTER,
    INDEXES,
    RETRY_SECONDS,
    Retries,
    WorkQueue,
    _view,
    job_uid,
    needs_reconcile,
    pod_key,
    register,
    resource_uid,
    retry_after,
)
from kubeopt.controller.jobs import build_job
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.reconcile import Reconciler
from kubeopt.controller.records import pod_record, resource_record
from kubeopt.controller.settings import OperatorSettings

from .conftest import owner, parsed, spec_dict

UID = "0b7f2d9e-5a4c-4c61-9d3e-2f1a7c9e8b10"
OWNER_REF = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization", "name": "digits", "uid": UID,
             "controller": True}


def _job(name: str, uid: str, labels: dict[str, str], owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "labels": labels, "ownerReferences": owners or []}}


def _pod(job_name: str, labels: dict[str, str], owner_job_uid: str | None = None) -> dict[str, Any]:
    owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": owner_job_uid}] \
        if owner_job_uid else []
    return {"metadata": {"name": f"{job_name}-x", "labels": {"batch.kubernetes.io/job-name": job_name, **labels},
                         "ownerReferences": owners}}


def test_a_job_is_matched_by_its_uid_label_not_by_the_name_label() -> None:
    job = _job("j", "job-1", {"kubeopt.io/optimization": "other-name", "kubeopt.io/optimization-uid": UID})

    assert resource_uid(job) == UID


def test_a_job_of_an_older_operator_without_the_uid_label_is_matched_by_its_owner_reference() -> None:
    job = _job("j", "job-1", {"kubeopt.io/optimization": "digits"}, [OWNER_REF])

    assert resource_uid(job) == UID


def test_a_job_without_uid_label_or_owner_reference_belongs_to_no_resource() -> None:
    job = _job("j", "job-1", {"kubeopt.io/optimization": "digits"},
               [{"apiVersion": "apps/v1", "kind": "Deployment", "uid": "other"}])

    assert resource_uid(job) is None


def test_a_pod_of_an_older_operator_is_kept_under_its_jobs_uid() -> None:
    pod = _pod("j", {"kubeopt.io/optimization": "digits"}, owner_job_uid="job-1")

    assert resource_uid(pod) is None
    assert job_uid(pod) == "job-1"
    assert pod_key(pod) == ("job", "job-1")


def test_the_view_joins_labelled_pods_and_an_older_jobs_pods_by_job() -> None:
    new_job = _job("j1", "job-1", {"kubeopt.io/optimization-uid": UID})
    old_job = _job("j2", "job-2", {"kubeopt.io/optimization": "digits"}, [OWNER_REF])
    indexes: dict[str, dict[Any, list[Any]]] = {
        "mopt": {UID: [resource_record({"metadata": {"name": "digits", "uid": UID}})]},
        "job": {UID: [new_job, old_job]},
        "pod": {UID: [_pod("j1", {"kubeopt.io/optimization-uid": UID}), {"metadata": {"labels": {}}}],
                ("job", "job-2"): [_pod("j2", {}, owner_job_uid="job-2")],
                ("job", "job-3"): [_pod("j3", {}, owner_job_uid="job-3")]}}

    view = _view(UID, indexes["mopt"], indexes["job"], indexes["pod"])  # type: ignore[arg-type]

    assert view is not None
    assert sorted(view.pods_by_job) == ["j1", "j2"]
    assert [j["metadata"]["name"] for j in view.jobs] == ["j1", "j2"]
    assert _view("another-uid", indexes["mopt"], indexes["job"], indexes["pod"]) is None  # type: ignore[arg-type]


def test_a_job_built_for_a_253_character_name_is_found_again_under_its_resource(
        settings: OperatorSettings) -> None:
    name = ("a" * 63 + ".") * 3 + "b" * 61
    o = owner(name=name)
    o = type(o)(name=o.name, namespace="n" * 63, uid=UID, generation=1, spec=o.spec)
    job = build_job(o, parsed(o), parsed(o).targets[0], settings)
    job["metadata"]["ownerReferences"] = [OWNER_REF]
    pod = {"metadata": {"labels": {**job["spec"]["template"]["metadata"]["labels"],
                                   "batch.kubernetes.io/job-name": job["metadata"]["name"]}}}

    assert len(name) == 253
    assert resource_uid(job) == UID
    assert pod_key(pod) == UID


def test_a_pod_record_keeps_what_the_status_and_the_matching_need() -> None:
    body = {"metadata": {"name": "p", "uid": "pod-1", "labels": {"job-name": "j"}, "creationTimestamp": "t",
                         "ownerReferences": [{"kind": "Job", "uid": "job-1"}], "managedFields": [1]},
            "spec": {"containers": [{"command": ["kubeopt", "run", "--spec-json", "{...}"]}]},
            "status": {"phase": "Running"}}

    record = pod_record(body)

    assert record == {"metadata": {"name": "p", "uid": "pod-1", "labels": {"job-name": "j"}, "creationTimestamp": "t",
                                   "ownerReferences": [{"kind": "Job", "uid": "job-1"}]},
                      "status": {"phase": "Running"}}


def _throttled(headers: dict[str, str] | None) -> ApiException:
    error = ApiException(status=429, reason="Too Many Requests")
    error.headers = headers
    return error


def test_a_429_is_retried_after_the_servers_retry_after() -> None:
    assert retry_after(_throttled({"Retry-After": "3"})) == 3.0
    assert retry_after(_throttled({"Retry-After": "0"})) == 1.0
    assert retry_after(_throttled(None)) == RETRY_SECONDS
    assert retry_after(_throttled({"Retry-After": "soon"})) == RETRY_SECONDS


def test_errors_other_than_429_carry_no_retry_after() -> None:
    assert retry_after(ApiException(status=500)) is None
    assert retry_after(RuntimeError("bug")) is None


def test_a_429_is_retried_after_the_servers_delay_however_often_it_comes() -> None:
    retries = Retries()

    delays = [retries.after(UID, _throttled({"Retry-After": "3"})) for _ in range(3 * GIVE_UP_AFTER)]

    assert delays == [3.0] * (3 * GIVE_UP_AFTER)


def test_other_failures_are_retried_every_retry_seconds_then_left_to_the_next_change() -> None:
    retries = Retries()
    error = RuntimeError("no route to the API server")

    delays = [retries.after(UID, error) for _ in range(GIVE_UP_AFTER)]
    after_giving_up = retries.after(UID, error)

    assert delays == [RETRY_SECONDS] * (GIVE_UP_AFTER - 1) + [None]
    assert after_giving_up == RETRY_SECONDS  # the next change starts a new count
    assert retries.after("another", error) == RETRY_SECONDS  # counted per resource


def test_a_success_or_a_deletion_clears_the_count_of_failures() -> None:
    retries = Retries()
    error = RuntimeError("no route to the API server")
    for _ in range(GIVE_UP_AFTER - 1):
        retries.after(UID, error)

    retries.succeeded(UID)
    retries.after("gone", error)
    retries.forget("gone")

    assert retries.after(UID, error) == RETRY_SECONDS
    assert len(retries) == 1


def test_a_delayed_retry_comes_back_once_and_a_cancelled_one_never() -> None:
    async def scenario() -> tuple[list[str], bool, bool]:
        seen: list[str] = []

        async def work(uid: str) -> None:
            seen.append(uid)

        queue = WorkQueue(2, work)
        queue.add("first")  # starts the workers
        queue.add_later("retried", 0.05)
        queue.add_later("retried", 0.05)  # replaces, does not double
        queue.add_later("cancelled", 0.05)
        waiting = queue.waiting("retried")
        queue.cancel_later("cancelled")
        await asyncio.sleep(0.2)
        await queue.join()
        still_waiting = queue.waiting("retried")
        await queue.stop()
        return seen, waiting, still_waiting

    seen, waiting, still_waiting = asyncio.run(scenario())

    assert sorted(seen) == ["first", "retried"]
    assert waiting and not still_waiting


@pytest.mark.parametrize(("event_type", "metadata", "status", "expected"), [
    (None, {"generation": 3}, {"observedGeneration": 3}, True),  # listed when the operator starts
    ("ADDED", {"generation": 1}, {"observedGeneration": 0}, True),
    ("MODIFIED", {"generation": 2}, {"observedGeneration": 1}, True),  # the spec changed
    ("MODIFIED", {"generation": 2}, {}, True),
    ("MODIFIED", {"generation": 2}, {"observedGeneration": 2}, False),  # our own status write
    ("MODIFIED", {"generation": 2, "deletionTimestamp": "2026-11-30T00:00:00Z"}, {"observedGeneration": 1}, False),
    (None, {"generation": 2, "deletionTimestamp": "2026-11-30T00:00:00Z"}, {}, False),
])
def test_a_resource_event_asks_for_a_reconcile_only_when_listed_created_or_of_an_unobserved_generation(
        event_type: str | None, metadata: dict[str, Any], status: dict[str, Any], expected: bool) -> None:
    assert needs_reconcile(event_type, {"metadata": metadata, "status": status}) is expected


class _Cluster:
    """Refuses status writes with ``refusal`` ``times`` times; records what got through."""

    def __init__(self, refusal: Exception | None, times: int = 1_000_000) -> None:
        self.refusal = refusal
        self.times = times
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.jobs: list[str] = []

    def create_job(self, owner_body: Any, job: dict[str, Any]) -> bool:
        self.jobs.append(job["metadata"]["name"])
        return True

    def delete_job(self, namespace: str, name: str) -> None: ...

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None: ...

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.refusal is not None and self.times > 0:
            self.times -= 1
            raise self.refusal
        self.statuses.append(status)

    def event(self, body: Any, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(f"{reason}: {message}")


def _registered(cluster: _Cluster) -> tuple[Any, CollectorRegistry, dict[str, Any]]:
    """The resource event handler of a registry built by ``register``, and a listed resource's kwargs."""
    metrics_registry = CollectorRegistry()
    registry = kopf.OperatorRegistry()
    register(registry, Reconciler(OperatorSettings(), Metrics(metrics_registry), cluster, now=lambda: "now"))
    handler = next(h.fn for h in registry._watching.get_all_handlers() if h.id == "resource_changed")
    body = {"metadata": {"name": "digits", "namespace": "ml", "uid": UID, "generation": 1}, "spec": spec_dict()}
    kwargs = {"type": None, "uid": UID, "name": "digits", "namespace": "ml", "body": body,
              "mopt_index": {UID: [resource_record(body)]}, "job_index": {}, "pod_index": {}, "legacy_job_index": {}}
    return handler, metrics_registry, kwargs


def _until(condition: Any, seconds: float) -> Any:
    async def wait() -> None:
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            await asyncio.sleep(0.02)
    return wait()


def test_a_throttled_reconcile_is_queued_again_after_retry_after_and_announces_each_transition_once() -> None:
    cluster = _Cluster(_throttled({"Retry-After": "1"}), times=2)
    handler, metrics, kwargs = _registered(cluster)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await handler(**kwargs)
        await _until(lambda: cluster.statuses, 10)
        return loop.time() - started

    took = asyncio.run(scenario())

    assert len(cluster.statuses) == 1
    assert took >= 2.0  # two refusals, each waited out for its Retry-After
    assert metrics.get_sample_value("kubeopt_reconcile_retries_total", {"namespace": "ml", "cause": "throttled"}) == 2
    job_created = [e for e in cluster.events if e.startswith("JobCreated")]
    assert len(cluster.jobs) == len(set(cluster.jobs)) == len(job_created) == 1  # parallelism 1: created once
    assert not [e for e in cluster.events if e.startswith("Pending")]  # nothing happened yet, nothing to announce


def test_other_failures_are_retried_then_the_resource_waits_for_its_next_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kubeopt.controller.handlers.RETRY_SECONDS", 0.05)
    cluster = _Cluster(RuntimeError("no route to the API server"))
    handler, metrics, kwargs = _registered(cluster)

    def errors() -> float | None:
        return metrics.get_sample_value("kubeopt_reconcile_retries_total", {"namespace": "ml", "cause": "error"})

    async def scenario() -> tuple[float | None, float | None]:
        await handler(**kwargs)
        await _until(lambda: errors() == GIVE_UP_AFTER, 5)
        await asyncio.sleep(0.3)  # nothing more comes
        given_up = errors()
        cluster.times = 0  # the API server is back; the next change reconciles
        await handler(**{**kwargs, "type": "MODIFIED"})  # a change of an unobserved generation
        await _until(lambda: cluster.statuses, 5)
        return given_up, errors()

    given_up, after_the_change = asyncio.run(scenario())

    assert given_up == GIVE_UP_AFTER
    assert after_the_change == GIVE_UP_AFTER
    assert len(cluster.statuses) == 1


def test_every_handler_is_an_event_or_index_handler_so_kopf_keeps_no_body_no_diff_base_and_no_finalizer() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), _Cluster(None)))

    assert registry._changing.get_all_handlers() == []  # no create/update/resume: no annotation written
    assert registry._spawning.get_all_handlers() == []  # no daemon or timer: no live body, no finalizer
    assert {h.id for h in registry._watching.get_all_handlers()} == {"resource_changed", "job_changed",
                                                                      "pod_changed"}


class _CountingReconciler(Reconciler):
    def __init__(self, cluster: _Cluster) -> None:
        super().__init__(OperatorSettings(), Metrics(CollectorRegistry()), cluster, now=lambda: "now")
        self.calls = 0

    def reconcile(self, key: str, view: Any) -> None:
        self.calls += 1
        super().reconcile(key, view)


def test_the_added_event_of_a_job_the_operator_just_created_queues_no_reconcile_but_its_changes_do() -> None:
    cluster = _Cluster(None)
    reconciler = _CountingReconciler(cluster)
    registry = kopf.OperatorRegistry()
    register(registry, reconciler)
    handlers = {h.id: h.fn for h in registry._watching.get_all_handlers()}
    body = {"metadata": {"name": "digits", "namespace": "ml", "uid": UID, "generation": 1}, "spec": spec_dict()}
    indexes = {"mopt_index": {UID: [resource_record(body)]}, "job_index": {}, "pod_index": {}, "legacy_job_index": {}}

    def job_event(event_type: str, name: str) -> dict[str, Any]:
        job = _job(name, "job-1", {"kubeopt.io/optimization-uid": UID})
        return {"type": event_type, "name": name, "namespace": "ml", "body": job, **indexes}

    async def scenario() -> list[int]:
        await handlers["resource_changed"](type="ADDED", uid=UID, name="digits", namespace="ml", body=body, **indexes)
        await _until(lambda: cluster.jobs, 5)
        calls = [reconciler.calls]
        await handlers["job_changed"](**job_event("ADDED", cluster.jobs[0]))  # as the operator created it
        await asyncio.sleep(0.2)
        calls.append(reconciler.calls)
        await handlers["job_changed"](**job_event("ADDED", "someone-elses-job"))
        await _until(lambda: reconciler.calls > calls[-1], 5)
        calls.append(reconciler.calls)
        await handlers["job_changed"](**job_event("MODIFIED", cluster.jobs[0]))  # it started, say
        await _until(lambda: reconciler.calls > calls[-1], 5)
        calls.append(reconciler.calls)
        return calls

    assert asyncio.run(scenario()) == [1, 1, 2, 3]


def test_every_index_and_event_handler_is_a_coroutine_so_kopf_runs_none_in_its_thread_pool() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), _Cluster(None)))

    handlers = registry._indexing.get_all_handlers() + registry._watching.get_all_handlers()

    assert {h.id for h in registry._indexing.get_all_handlers()} == set(INDEXES)
    assert [h.id for h in handlers if not asyncio.iscoroutinefunction(h.fn)] == []
