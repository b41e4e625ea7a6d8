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
    RETRY_SECONDS,
    Retries,
    _view,
    job_uid,
    pod_key,
    register,
    resource_uid,
    retry_after,
)
from kubeopt.controller.jobs import build_job
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.reconcile import Reconciler
from kubeopt.controller.records import pod_record
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
        "mopt": {UID: [{"metadata": {"name": "digits", "uid": UID}}]},
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


def test_a_marked_resource_wakes_its_waiting_daemon_until_done() -> None:
    async def scenario() -> tuple[bool, bool, bool, int, int]:
        retries = Retries()
        waiter = asyncio.ensure_future(retries.wait("u1"))
        await asyncio.sleep(0)
        idle = waiter.done()
        retries.mark("u1")
        await asyncio.wait_for(waiter, 1)
        first, second = retries.failed("u1"), retries.failed("u1")
        retries.done("u1")
        return idle, retries.pending("u1"), retries.pending("u2"), first, second

    idle, pending_after_done, other_pending, first, second = asyncio.run(scenario())

    assert not idle
    assert not pending_after_done and not other_pending
    assert (first, second) == (1, 2)


def test_a_forgotten_resource_leaves_no_retry_state() -> None:
    async def scenario() -> Retries:
        retries = Retries()
        retries.mark("u1")
        retries.failed("u1")
        retries.forget("u1")
        return retries

    retries = asyncio.run(scenario())

    assert not retries.pending("u1")
    assert retries.failed("u1") == 1


class _Stopped:
    """What kopf hands a daemon as ``stopped``: false until kopf stops it."""

    def __init__(self) -> None:
        self.flag = False

    def __bool__(self) -> bool:
        return self.flag


class _Cluster:
    """Refuses status writes with ``refusal`` until it is None; records what got through."""

    def __init__(self, refusal: Exception | None) -> None:
        self.refusal = refusal
        self.statuses: list[dict[str, Any]] = []

    def create_job(self, owner_body: Any, job: dict[str, Any]) -> bool:
        return True

    def delete_job(self, namespace: str, name: str) -> None: ...

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None: ...

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.refusal is not None:
            raise self.refusal
        self.statuses.append(status)

    def event(self, body: Any, reason: str, message: str, warning: bool = False) -> None: ...


def _retry_daemon(refusal: Exception | None) -> tuple[Any, Retries, _Cluster, CollectorRegistry, dict[str, Any]]:
    cluster, metrics_registry, retries = _Cluster(refusal), CollectorRegistry(), Retries()
    registry = kopf.OperatorRegistry()
    register(registry, Reconciler(OperatorSettings(), Metrics(metrics_registry), cluster, now=lambda: "now"), retries)
    daemon = next(h.fn for h in registry._spawning.get_all_handlers() if h.id == "retry")
    body = {"metadata": {"name": "digits", "namespace": "ml", "uid": UID, "generation": 1}, "spec": spec_dict()}
    kwargs = {"uid": UID, "namespace": "ml", "stopped": _Stopped(), "mopt_index": {UID: [body]}, "job_index": {},
              "pod_index": {}}
    return daemon, retries, cluster, metrics_registry, kwargs


def test_a_throttled_retry_raises_kopfs_temporary_error_with_the_servers_retry_after_and_stays_pending() -> None:
    daemon, retries, cluster, metrics, kwargs = _retry_daemon(_throttled({"Retry-After": "3"}))

    async def scenario() -> kopf.TemporaryError:
        retries.mark(UID)
        with pytest.raises(kopf.TemporaryError) as caught:
            await daemon(**kwargs)
        return caught.value

    error = asyncio.run(scenario())

    assert error.delay == 3.0
    assert retries.pending(UID)
    assert cluster.statuses == []
    assert metrics.get_sample_value("kubeopt_reconcile_retries_total", {"namespace": "ml", "cause": "throttled"}) == 1


def test_a_retry_that_succeeds_clears_the_mark_and_the_daemon_ends_quietly_when_kopf_stops_it() -> None:
    daemon, retries, cluster, _, kwargs = _retry_daemon(None)

    async def scenario() -> None:
        retries.mark(UID)
        task = asyncio.ensure_future(daemon(**kwargs))
        for _ in range(200):
            if cluster.statuses:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        kwargs["stopped"].flag = True
        task.cancel()  # what kopf does to an async daemon once its stop flag is set
        await asyncio.wait_for(task, 1)  # returns instead of raising CancelledError

    asyncio.run(scenario())

    assert len(cluster.statuses) == 1
    assert not retries.pending(UID)


def test_other_failures_are_retried_then_left_to_the_next_change() -> None:
    daemon, retries, cluster, metrics, kwargs = _retry_daemon(RuntimeError("no route to the API server"))

    async def scenario() -> int:
        retries.mark(UID)
        raised = 0
        for _ in range(GIVE_UP_AFTER - 1):
            with pytest.raises(kopf.TemporaryError):
                await daemon(**kwargs)
            raised += 1
        task = asyncio.ensure_future(daemon(**kwargs))  # the last failure gives up and waits for a mark
        await asyncio.sleep(0.2)
        assert not task.done()
        kwargs["stopped"].flag = True
        task.cancel()
        await asyncio.wait_for(task, 1)
        return raised

    raised = asyncio.run(scenario())

    assert raised == GIVE_UP_AFTER - 1
    assert cluster.statuses == []
    assert not retries.pending(UID)
    assert metrics.get_sample_value("kubeopt_reconcile_retries_total", {"namespace": "ml", "cause": "error"}) == \
        GIVE_UP_AFTER
