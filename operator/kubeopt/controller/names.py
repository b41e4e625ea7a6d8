"""Deterministic names and labels of the Jobs the operator owns.

A Job's name is ``<resource>-<target>-<hash>`` where the hash covers the resource's
generation and the target's spec: the same generation always yields the same name (so a
restarted operator finds its Jobs, and a 409 on create means "already there"), while a spec
change yields new names. Names stay within the 63 characters of a DNS label, because the Job
controller copies the Job's name into a pod label.
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
TARGET_LABEL = "kubeopt.io/target"
GENERATION_LABEL = "kubeopt.io/generation"
WORKER_CONTAINER = "worker"


def spec_hash(generation: int, target: dict[str, Any]) -> str:
    """A short, stable hash of a generation and a target's spec (camelCase wire form)."""
    text = json.dumps({"generation": generation, "target": target}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, never ending in a dash (a DNS label cannot)."""
    return text[:limit].rstrip("-")


def job_name(resource: str, target: str, generation: int, target_spec: dict[str, Any]) -> str:
    """``<resource>-<target>-<hash>``, at most 63 characters, deterministic."""
    suffix = spec_hash(generation, target_spec)
    stem = _fit(f"{resource}-{target}", MAX_NAME - HASH_LENGTH - 1)
    return f"{stem}-{suffix}"


def label_value(text: str) -> str:
    """A label value (<= 63 characters); a longer name keeps a prefix and gains a hash."""
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    return f"{_fit(text, MAX_NAME - HASH_LENGTH - 1)}-{digest}"


def job_labels(resource: str, target: str, generation: int) -> dict[str, str]:
    """The labels every target Job and its pods carry; the watches select on them."""
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        OPTIMIZATION_LABEL: label_value(resource),
        TARGET_LABEL: target,
        GENERATION_LABEL: str(generation),
    }
