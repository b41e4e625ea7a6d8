"""kopf wiring: indexes over resources, Jobs and pods; handlers that call the reconciler.

Everything is driven by watches. Three indexes keep what the watches saw (kopf fills them
before any other handler runs, so a restarted operator knows its Jobs before it acts):
resources by (namespace, name), Jobs and pods by their resource's (namespace, name). A change
of the resource (create, update, resume) or of one of its Jobs or pods reconciles that
resource; its deletion drops its metric series. Handlers are registered on a registry passed
in, never the global one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from kubeopt.api.spec import GROUP, PLURAL, VERSION
from kubeopt.controller.names import MANAGED_BY, MANAGED_BY_VALUE, OPTIMIZATION_LABEL
from kubeopt.controller.observe import job_name_of_pod
from kubeopt.controller.reconcile import Key, Reconciler, View
from kubeopt.controller.records import job_record, pod_record, resource_record

log = logging.getLogger(__name__)
OWNED = {MANAGED_BY: MANAGED_BY_VALUE}
RETRY_SECONDS = 10  # a failed reconcile is retried this soon
EVENT_RETRIES = 5


def _owner_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    name = labels.get(OPTIMIZATION_LABEL)
    return (namespace, name) if namespace and name else None


def _view(key: Key, mopt_index: kopf.Index[Any, Any], job_index: kopf.Index[Any, Any],
          pod_index: kopf.Index[Any, Any]) -> View | None:
    bodies = list(mopt_index.get(key, ()))
    if not bodies:
        return None
    pods: dict[str, list[dict[str, Any]]] = {}
    for pod in pod_index.get(key, ()):
        job = job_name_of_pod(pod)
        if job:
            pods.setdefault(job, []).append(pod)
    return View(body=bodies[0], jobs=list(job_index.get(key, ())), pods_by_job=pods)


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Register every handler on ``registry``; they act through ``reconciler``."""
    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.index(GROUP, VERSION, PLURAL, id="mopt_index", registry=registry)
    def mopt_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        return {(kwargs["namespace"], kwargs["name"]): resource_record(kwargs["body"])}

    @kopf.index("batch", "v1", "jobs", labels=OWNED, id="job_index", registry=registry)
    def job_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        key = _owner_key(kwargs["namespace"], kwargs["labels"])
        return {key: job_record(kwargs["body"])} if key else {}

    @kopf.index("", "v1", "pods", labels=OWNED, id="pod_index", registry=registry)
    def pod_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        key = _owner_key(kwargs["namespace"], kwargs["labels"])
        return {key: pod_record(kwargs["body"])} if key else {}

    def run(key: Key, indexes: Mapping[str, Any]) -> None:
        reconciler.reconcile(key, lambda: _view(key, indexes["mopt_index"], indexes["job_index"],
                                                indexes["pod_index"]))

    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", backoff=RETRY_SECONDS, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", backoff=RETRY_SECONDS, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="reconcile", backoff=RETRY_SECONDS,
                     registry=registry)
    def on_change(**kwargs: Any) -> None:
        run((kwargs["namespace"], kwargs["name"]), kwargs)

    # No finalizer: Jobs go through their owner references (garbage collector) and artifacts
    # stay, so the operator only forgets the resource once the watch reports it gone.
    @kopf.on.event(GROUP, VERSION, PLURAL, id="forget", registry=registry)
    def on_gone(**kwargs: Any) -> None:
        if kwargs["type"] == "DELETED":
            reconciler.forget(kwargs["namespace"], kwargs["name"])

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED, id="job_changed", registry=registry)
    def on_job(**kwargs: Any) -> None:
        _guarded(run, _owner_key(kwargs["namespace"], kwargs["labels"]), kwargs)

    @kopf.on.event("", "v1", "pods", labels=OWNED, id="pod_changed", registry=registry)
    def on_pod(**kwargs: Any) -> None:
        _guarded(run, _owner_key(kwargs["namespace"], kwargs["labels"]), kwargs)


def _guarded(run: Callable[[Key, Mapping[str, Any]], None], key: Key | None, indexes: Mapping[str, Any],
             attempt: int = 1) -> None:
    """Event handlers are not retried by kopf: after a failure, reconcile again in a few seconds
    (a one-shot timer, up to ``EVENT_RETRIES`` times), unless another event comes first."""
    if key is None:
        return
    try:
        run(key, indexes)
    except Exception:
        log.exception("reconciling %s/%s after a Job or pod change failed (attempt %d)", *key, attempt)
        if attempt < EVENT_RETRIES:
            timer = threading.Timer(RETRY_SECONDS, _guarded, (run, key, indexes, attempt + 1))
            timer.daemon = True
            timer.start()
