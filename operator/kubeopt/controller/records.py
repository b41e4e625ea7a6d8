"""Slim records of watched objects: what kopf's indexes keep of each resource, Job and pod.

The indexes hold one record per watched object for the operator's whole life, so their size
is the operator's memory at thousands of resources. A whole body is mostly what nothing here
reads: a Job's pod template (the worker's command carries the target's spec as JSON), kopf's
and kubectl's annotations (each a copy of the spec), managedFields, a pod's spec. A record
keeps only what ``reconcile``, ``observe``, ``plan`` and ``status`` read, and the identity
every object keeps (``IDENTITY``: uid, name, namespace, labels, ownerReferences, generation)
so that matching by owner UID and kopf's ``adopt`` and Events (apiVersion, kind, name, uid,
namespace, labels) work from a record as from the body. A record is built anew from each
event's body and holds nothing of it, so the parsed body is freed once kopf is done with it.

A record shares its strings (``_shared``): every watch event is parsed afresh, so each record
held its own copy of every key ("lastTransitionTime", "observedGeneration"), of every value
its neighbours repeat ("Pending", the namespace, label values) and of the UIDs and Job names
that a resource, its Jobs' labels and owner references and its status all name. A resource's
spec and status, read only when it is reconciled, are kept as one compact JSON text
(``resource_from_record`` decodes them): 1.4 KiB instead of 3.7 as shared dicts. The records of a
resource and its two Jobs take 5.7 KiB, 16.1 before either (tracemalloc, 1,000 of them).
Interned strings are mortal on CPython 3.11 (the images' Python): a deleted resource's UID
and names go with its records.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

#: Metadata every record keeps when the object has it.
IDENTITY = ("uid", "name", "namespace", "labels", "ownerReferences", "generation")
#: Job spec fields the plan and the observation read (suspension, TTL, deadline).
JOB_SPEC = ("suspend", "ttlSecondsAfterFinished", "activeDeadlineSeconds")
#: Pod status fields the observation reads: phase, scheduling conditions, the worker's termination.
POD_STATUS = ("phase", "reason", "message", "startTime", "conditions", "containerStatuses")
#: The key of a resource record's spec and status, as JSON text.
ENCODED = "encoded"


#: Strings longer than this are kept as they are (a message, a worker's output): few repeat.
SHARED_LENGTH = 128
_intern = sys.intern


def _shared(value: Any) -> Any:
    """``value`` (parsed JSON) rebuilt with every key and short string interned (one copy
    process-wide). Exact type checks and a dict's strings interned in place: this runs on every
    watch event (about 20 µs for a resource's body)."""
    kind = type(value)
    if kind is dict:
        return {_intern(key): _intern(item) if type(item) is str and len(item) <= SHARED_LENGTH else _shared(item)
                for key, item in value.items()}
    if kind is list:
        return [_shared(item) for item in value]
    if kind is str and len(value) <= SHARED_LENGTH:
        return _intern(value)
    return value


def _pick(source: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    source = source or {}
    return {key: _shared(source[key]) for key in keys if source.get(key) is not None}


def _metadata(body: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    return _pick(body.get("metadata"), IDENTITY + extra)


def resource_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelOptimization as the index keeps it: apiVersion and kind (owner references and
    Events name them), identity and deletionTimestamp, and the whole spec and status as JSON text
    (``ENCODED``); no annotations or managedFields. ``resource_from_record`` makes it a body again."""
    record = _pick(body, ("apiVersion", "kind"))
    record["metadata"] = _metadata(body, "deletionTimestamp")
    record[ENCODED] = json.dumps({"spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {})},
                                 separators=(",", ":"))
    return record


def resource_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A resource record as the reconciler reads it: a body with its spec and status (decoded
    afresh, so the reconciler's copy is its own)."""
    body = {key: value for key, value in record.items() if key != ENCODED}
    body.update(json.loads(record[ENCODED]))
    return body


def job_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Job as the plan and the observation read it: identity, ``JOB_SPEC`` and the whole
    status (counts, times, conditions); no pod template."""
    return {"metadata": _metadata(body), "spec": _pick(body.get("spec"), JOB_SPEC),
            "status": _shared(dict(body.get("status") or {}))}


def pod_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pod as the observation reads it: identity with its creation time (newest attempt
    first) and ``POD_STATUS``; no spec."""
    return {"metadata": _metadata(body, "creationTimestamp"), "status": _pick(body.get("status"), POD_STATUS)}
