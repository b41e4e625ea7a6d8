"""Deterministic names and labels of the Jobs the operator owns.

A Job's name is ``<resource>-<target>-<hash>`` where the hash is a fingerprint of the
target's *work*: the spec as stored, less the fields that only say how Jobs are run
(``suspend``, ``parallelism``, ``ttlSecondsAfterFinished``), with ``targets`` narrowed to this
target. The same work always yields the same name (so a restarted operator finds its Jobs, a
409 on create means "already there", and suspending, resuming or changing the parallelism
keeps the Jobs), while a change of what a Job computes or where it publishes yields new
names. Names stay within the 63 characters of a DNS label, because the Job controller copies
the Job's name into a pod label.

A resource's name may have 253 characters, so the human-readable ``kubeopt.io/optimization``
label holds a shortened, hashed form and is never read back as a name. Jobs and their pods are
matched to their resource by its UID: the ``kubeopt.io/optimization-uid`` label (and the Job's
owner reference); a resource deleted and created again under the same name is another resource.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_NAME = 63
HASH_LENGTH = 8

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubeopt"
OPTIMIZATION_LABEL = "kubeopt.io/optimization"
OPTIMIZATION_UID_LABEL = "kubeopt.io/optimization-uid"
TARGET_LABEL = "kubeopt.io/target"
GENERATION_LABEL = "kubeopt.io/generation"
WORKER_CONTAINER = "worker"


# Spec fields (camelCase wire form) that change how many Jobs run or how long they are kept,
# never what one computes: not part of the work, so changing them keeps the Jobs.
NOT_WORK = frozenset({"suspend", "parallelism", "ttlSecondsAfterFinished"})


def work(spec: dict[str, Any], target: str) -> dict[str, Any]:
    """What one target's Job computes and where it publishes: ``spec`` less ``NOT_WORK``, with
    ``targets`` narrowed to the target named (wire form, as stored); KeyError when absent."""
    chosen = [dict(t) for t in spec.get("targets") or [] if t.get("name") == target]
    if not chosen:
        raise KeyError(target)
    result = {key: value for key, value in spec.items() if key not in NOT_WORK}
    result["targets"] = chosen[:1]
    return result


def spec_hash(work: dict[str, Any]) -> str:
    """A short, stable hash of a target's work (``work()``)."""
    text = json.dumps(work, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, never ending in a dash or dot (a DNS label cannot)."""
    return text[:limit].rstrip("-.")


def job_name(resource: str, target: str, work: dict[str, Any]) -> str:
    """``<resource>-<target>-<hash of the work>``, at most 63 characters, deterministic."""
    suffix = spec_hash(work)
    stem = _fit(f"{resource}-{target}", MAX_NAME - HASH_LENGTH - 1)
    return f"{stem}-{suffix}"


def label_value(text: str) -> str:
    """A label value (<= 63 characters); a longer name keeps a prefix and gains a hash."""
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    return f"{_fit(text, MAX_NAME - HASH_LENGTH - 1)}-{digest}"


def job_labels(resource: str, uid: str, target: str, generation: int) -> dict[str, str]:
    """The labels every target Job and its pods carry; the watches select on them.

    ``uid`` is the resource's ``metadata.uid``, what the operator matches Jobs and pods by;
    ``generation`` is the resource's generation when the Job was created; a Job kept across
    later generations (its work unchanged) keeps it."""
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        OPTIMIZATION_LABEL: label_value(resource),
        OPTIMIZATION_UID_LABEL: uid,
        TARGET_LABEL: target,
        GENERATION_LABEL: str(generation),
    }
