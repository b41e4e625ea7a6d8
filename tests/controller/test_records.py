"""Slim records keep every field the reconciler reads: each decision made from a record equals
the one made from the whole body, as the API server returns it."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from kopf._cogs.structs.bodies import Body, build_object_reference
from prometheus_client import CollectorRegistry

from kubeopt.api.reasons import Reason
from kubeopt.controller.jobs import build_job
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.observe import job_name_of_pod, observe
from kubeopt.controller.plan import expected_names, make_plan
from kubeopt.controller.reconcile import Reconciler, View
from kubeopt.controller.records import (
    ENCODED,
    IDENTITY,
    job_record,
    pod_record,
    resource_from_record,
    resource_record,
)
from kubeopt.controller.settings import OperatorSettings

from .conftest import cond, parsed, spec_dict, summary_text
from .conftest import owner as make_owner

API_METADATA = {"resourceVersion": "4711", "creationTimestamp": "2026-11-25T09:59:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]}


def resource_body(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A ModelOptimization as a watch delivers it: kubectl's and kopf's annotations included."""
    wire = spec_dict(parallelism=2, **spec)
    return {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "digits", "namespace": "ml", "uid": "uid-mopt", "generation": generation,
                         "labels": {"team": "vision"}, **API_METADATA,
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(wire),
                                         "kubeopt.io/last-handled-configuration": json.dumps({"spec": wire})}},
            "spec": wire, "status": status or {}}


def job_body(target: int = 0, *, status: dict[str, Any] | None = None, ttl: int | None = None,
             suspend: bool = False) -> dict[str, Any]:
    """The Job the operator builds for a target, adopted, with what the API server adds."""
    body = resource_body(ttlSecondsAfterFinished=ttl, suspend=suspend) if ttl is not None else \
        resource_body(suspend=suspend)
    owner = make_owner(parallelism=2, **({"ttlSecondsAfterFinished": ttl} if ttl is not None else {}),
                       suspend=suspend)
    spec = parsed(owner)
    job = build_job(owner, spec, spec.targets[target], OperatorSettings(default_image="worker:test"))
    kopf.adopt(job, owner=Body(body))
    job["metadata"].update(uid=f"uid-job-{target}", generation=1, **API_METADATA)
    job["spec"].update(completions=1, parallelism=1, completionMode="NonIndexed", manualSelector=False,
                       selector={"matchLabels": {"batch.kubernetes.io/controller-uid": f"uid-job-{target}"}})
    job["status"] = status or {}
    return job


def pod_body(job: Mapping[str, Any], *, status: dict[str, Any]) -> dict[str, Any]:
    """A pod of ``job`` as the Job controller creates it, with a status."""
    name = job["metadata"]["name"]
    labels = {**job["spec"]["template"]["metadata"]["labels"], "batch.kubernetes.io/job-name": name,
              "job-name": name, "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-x7k2p", "namespace": "ml", "uid": "uid-pod", "labels": labels,
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                              "uid": job["metadata"]["uid"], "controller": True}],
                         "generation": 1, **API_METADATA},
            "spec": {**job["spec"]["template"]["spec"], "nodeName": "node-1"}, "status": status}


def terminated(code: int, message: str, reason: str = "Completed") -> dict[str, Any]:
    return {"phase": "Succeeded" if code == 0 else "Failed", "startTime": "2026-11-25T10:00:00Z",
            "conditions": [cond("PodScheduled")],
            "containerStatuses": [{"name": "worker", "ready": False, "restartCount": 0, "image": "worker:test",
                                   "state": {"terminated": {"exitCode": code, "reason": reason,
                                                            "message": message}}}]}


UNSCHEDULABLE = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                     "reason": "Unschedulable",
                                                     "message": "0/3 nodes have nvidia.com/gpu"}]}
COMPLETE = {"active": 0, "succeeded": 1, "failed": 0, "ready": 0, "startTime": "2026-11-25T10:00:00Z",
            "completionTime": "2026-11-25T10:02:00Z", "uncountedTerminatedPods": {},
            "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}
DEADLINE = {"active": 0, "failed": 1, "startTime": "2026-11-25T10:00:00Z",
            "conditions": [cond("Failed", "DeadlineExceeded")]}
RUNNING = {"active": 1, "ready": 0, "startTime": "2026-11-25T10:00:00Z"}


# -- identity -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", IDENTITY)
def test_every_record_keeps_each_identity_field_of_the_metadata(key: str) -> None:
    job = job_body()
    bodies = {"resource": (resource_record, resource_body()), "job": (job_record, job),
              "pod": (pod_record, pod_body(job, status=UNSCHEDULABLE))}

    for kind, (record, body) in bodies.items():
        if key in body["metadata"]:
            assert record(body)["metadata"][key] == body["metadata"][key], (kind, key)


def test_a_record_drops_what_nothing_reads_and_is_a_fraction_of_the_body() -> None:
    job = job_body()
    pod = pod_body(job, status=UNSCHEDULABLE)

    records = {"resource": (resource_record(resource_body()), resource_body()), "job": (job_record(job), job),
               "pod": (pod_record(pod), pod)}

    for kind, (record, body) in records.items():
        assert "managedFields" not in record["metadata"] and "annotations" not in record["metadata"], kind
        assert len(json.dumps(record)) < len(json.dumps(body)) / 2, kind
    assert "template" not in records["job"][0]["spec"]
    assert "spec" not in records["pod"][0]


def test_records_of_separately_parsed_bodies_share_one_copy_of_each_string_and_hold_nothing_of_the_body() -> None:
    status = {"phase": "Pending", "observedGeneration": 1}
    first, second = (json.loads(json.dumps(resource_body(status=status))) for _ in range(2))
    assert first["status"]["phase"] is not second["status"]["phase"]  # what each watch event parses

    records = resource_record(first), resource_record(second)

    assert records[0]["metadata"]["uid"] is records[1]["metadata"]["uid"]
    for key in records[0]["metadata"]:
        assert next(k for k in records[1]["metadata"] if k == key) is key
    assert records[0]["metadata"]["labels"] is not first["metadata"]["labels"]
    for record in records:  # spec and status are text until a reconcile reads them
        assert isinstance(record[ENCODED], str) and "spec" not in record and "status" not in record
        assert resource_from_record(record) == {**resource_record_fields(first), "spec": first["spec"],
                                                "status": first["status"]}


def resource_record_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What a resource record keeps besides spec and status."""
    meta = {k: v for k, v in body["metadata"].items() if k in IDENTITY or k == "deletionTimestamp"}
    return {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": meta}


def test_a_deleted_resources_strings_are_freed_with_its_records_interned_strings_being_mortal() -> None:
    unique = "uid-" + "7f3a" * 8
    body = {**resource_body(), "metadata": {**resource_body()["metadata"], "uid": "".join(unique)}}
    record = resource_record(json.loads(json.dumps(body)))
    fresh = "".join(list(unique))  # an equal string, alive while the record's is dropped
    assert record["metadata"]["uid"] is not fresh

    del record, body

    assert sys.intern(fresh) is fresh  # the record's copy left the interned table: nothing leaks


def test_a_resource_record_adopts_a_job_and_names_the_event_target_as_the_body_does() -> None:
    body = resource_body()
    from_body, from_record = job_body(), job_body()
    for job in (from_body, from_record):
        job["metadata"].pop("ownerReferences")

    kopf.adopt(from_body, owner=Body(body))
    kopf.adopt(from_record, owner=Body(resource_record(body)))

    assert from_record["metadata"] == from_body["metadata"]
    assert build_object_reference(Body(resource_record(body))) == build_object_reference(Body(body))


# -- what the reconciler decides from records -----------------------------------------------

@pytest.mark.parametrize(("status", "pod_status"), [
    (RUNNING, UNSCHEDULABLE),
    (RUNNING, terminated(137, "", reason="OOMKilled")),
    (COMPLETE, terminated(0, summary_text())),
    (DEADLINE, terminated(1, "")),
    ({"active": 0, "failed": 1, "conditions": [cond("Failed", "PodFailurePolicy")]},
     terminated(13, summary_text(reason=Reason.STORAGE_ERROR))),
], ids=["unschedulable", "oom-retrying", "complete", "deadline", "worker-failure"])
def test_a_target_observed_from_records_equals_the_one_observed_from_bodies(
        status: dict[str, Any], pod_status: dict[str, Any]) -> None:
    job = job_body(status=status)
    pod = pod_body(job, status=pod_status)

    from_records = observe(job_record(job), [pod_record(pod)], "ort-fp32")
    from_bodies = observe(job, [pod], "ort-fp32")

    assert from_records == from_bodies
    assert job_name_of_pod(pod_record(pod)) == job["metadata"]["name"]


def test_the_plan_from_job_records_suspends_resumes_and_patches_ttl_as_from_bodies() -> None:
    held = {"active": 0, "conditions": [cond("Suspended")]}
    jobs = [job_body(0, status=RUNNING, ttl=60), job_body(1, status=held, ttl=60, suspend=True)]
    owner = make_owner(parallelism=2, ttlSecondsAfterFinished=300)

    from_records = make_plan(owner, parsed(owner), [job_record(j) for j in jobs], {})
    from_bodies = make_plan(owner, parsed(owner), jobs, {})

    assert from_records == from_bodies
    assert from_records.suspend == ((jobs[1]["metadata"]["name"], False),)  # spec.suspend was read
    assert len(from_records.ttl) == 2  # spec.ttlSecondsAfterFinished was read


@dataclass
class Recording:
    """The writes of a reconciliation, and the owner each Job and Event was given."""

    created: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        kopf.adopt(job, owner=Body(owner_body))
        self.created.append(job)
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        raise AssertionError("nothing to delete")

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        raise AssertionError("nothing to patch")

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        self.events.append((dict(build_object_reference(Body(body))), reason, message))


def _reconcile(view: View) -> Recording:
    recording = Recording()
    Reconciler(OperatorSettings(), Metrics(CollectorRegistry()), recording, now=lambda: "now").reconcile(
        ("ml", "digits"), lambda: view)
    return recording


def test_a_reconcile_over_records_creates_writes_and_announces_what_one_over_bodies_does() -> None:
    previous = {"observedGeneration": 1, "targets": [{"name": "ort-fp32", "phase": "Running"}]}
    body = resource_body(status=previous)
    done = job_body(0, status=COMPLETE)
    pods = {done["metadata"]["name"]: [pod_body(done, status=terminated(0, summary_text()))]}

    from_records = _reconcile(View(body=resource_from_record(resource_record(body)), jobs=[job_record(done)],
                                   pods_by_job={k: [pod_record(p) for p in v] for k, v in pods.items()}))
    from_bodies = _reconcile(View(body=body, jobs=[done], pods_by_job=pods))

    assert from_records == from_bodies
    assert [j["metadata"]["name"] for j in from_records.created] == [expected_names(
        make_owner(parallelism=2), parsed(make_owner(parallelism=2)))["trt-fp16"]]
    assert from_records.created[0]["metadata"]["ownerReferences"][0]["uid"] == "uid-mopt"
    assert from_records.statuses[-1]["targets"][0]["phase"] == "Succeeded"


def test_pod_records_keep_the_creation_time_that_makes_the_newest_attempt_speak() -> None:
    job = job_body(status={"active": 0, "failed": 2, "conditions": [cond("Failed", "BackoffLimitExceeded")]})
    older = pod_body(job, status=terminated(13, summary_text(reason=Reason.STORAGE_ERROR)))
    newer = pod_body(job, status=terminated(137, "", reason="OOMKilled"))
    older["metadata"].update(name="attempt-z", creationTimestamp="2026-11-25T10:00:00Z")
    newer["metadata"].update(name="attempt-a", creationTimestamp="2026-11-25T10:05:00Z")

    seen = observe(job_record(job), [pod_record(older), pod_record(newer)], "ort-fp32")

    assert seen.reason == "OOMKilled"
