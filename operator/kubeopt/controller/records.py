"""Slim records of watched objects: what kopf's indexes keep of each resource, Job and pod.

The indexes hold one record per watched object for the operator's whole life, so their size
is the operator's memory at thousands of resources. A whole body is mostly what nothing here
reads: a Job's pod template (the worker's command carries the target's spec as JSON), kopf's
and kubectl's annotations (each a copy of the spec), managedFields, a pod's spec. A record
keeps only what ``reconcile``, ``observe``, ``plan`` and ``status`` read, and the identity
every object keeps (``IDENTITY``: uid, name, namespace, labels, ownerReferences, generation)
so that matching by owner UID and kopf's ``adopt`` and Events (apiVersion, kind, name, uid,
namespace, labels) work from a record as from the body. A record is a new dict over the body's
values, not a deep copy: copying every spec and status on every watch event would cost CPU
for nothing, since neither kopf nor the reconciler changes a body in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Metadata every record keeps when the object has it.
IDENTITY = ("uid", "name", "namespace", "labels", "ownerReferences", "generation")
#: Job spec fields the plan and the observation read (suspension, TTL, deadline).
JOB_SPEC = ("suspend", "ttlSecondsAfterFinished", "activeDeadlineSeconds")
#: Pod status fields the observation reads: phase, scheduling conditions, the worker's termination.
POD_STATUS = ("phase", "reason", "message", "startTime", "conditions", "containerStatuses")


def _pick(source: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    source = source or {}
    return {key: source[key] for key in keys if source.get(key) is not None}


def _metadata(body: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    return _pick(body.get("metadata"), IDENTITY + extra)


def resource_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelOptimization as the reconciler reads it: apiVersion and kind (owner references and
    Events name them), identity and deletionTimestamp, the whole spec and status; no annotations
    or managedFields."""
    record = _pick(body, ("apiVersion", "kind"))
    record["metadata"] = _metadata(body, "deletionTimestamp")
    record["spec"] = dict(body.get("spec") or {})
    record["status"] = dict(body.get("status") or {})
    return record


def job_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Job as the plan and the observation read it: identity, ``JOB_SPEC`` and the whole
    status (counts, times, conditions); no pod template."""
    return {"metadata": _metadata(body), "spec": _pick(body.get("spec"), JOB_SPEC),
            "status": dict(body.get("status") or {})}


def pod_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pod as the observation reads it: identity with its creation time (newest attempt
    first) and ``POD_STATUS``; no spec."""
    return {"metadata": _metadata(body, "creationTimestamp"), "status": _pick(body.get("status"), POD_STATUS)}
