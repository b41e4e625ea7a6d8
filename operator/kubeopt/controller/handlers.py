"""kopf wiring: indexes over resources, Jobs and pods; handlers that call the reconciler.

Everything is driven by watches. Three indexes keep what the watches saw (kopf fills them
before any other handler runs, so a restarted operator knows its Jobs before it acts), all
keyed by the resource's UID: resources by their own, Jobs and pods by the
``kubeopt.io/optimization-uid`` label. A Job of an older operator, without that label, is
found by its owner reference; its pods by their Job's owner reference (a fourth, small index
maps such Jobs to their resource). A name is never read back from a label: the human label
holds a shortened form of a long name.

Every handler is a watch-event handler that queues the resource's UID for a reconcile
(``WorkQueue``: once however many changes, 16 at a time): the resource when it is listed,
created or given a generation its status has not observed, its Jobs and pods on every change;
its deletion drops its metric series. kopf's change handlers (create, update, resume) are not
used: they cost a PATCH of kopf's last-handled-configuration annotation per resource, and
change detection is the generation's job. A failed reconcile, whatever triggered it, is queued
again after a delay (``Retries``): the server's Retry-After on a 429, however often; otherwise
every RETRY_SECONDS until GIVE_UP_AFTER failures in a row, then it waits for the next change.
Retries run in the queue's tasks, which kopf's handler context created, so the Events they post
are posted like any other. There is no kopf daemon and so no finalizer: a daemon per resource
kept kopf's live copy of each whole body (about 29 KiB a resource at 1,000) and put a finalizer
on each (one more PATCH); an older operator's finalizer is removed by kopf on the resource's
next event. Handlers are registered on a registry passed in, never the global one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubeopt.api.spec import GROUP, KIND, PLURAL, VERSION
from kubeopt.controller.apisession import bounded_session, connection_limit
from kubeopt.controller.names import MANAGED_BY, MANAGED_BY_VALUE, OPTIMIZATION_UID_LABEL
from kubeopt.controller.observe import job_name_of_pod
from kubeopt.controller.reconcile import Key, Reconciler, View
from kubeopt.controller.records import job_record, pod_record, resource_from_record, resource_record

log = logging.getLogger(__name__)
OWNED = {MANAGED_BY: MANAGED_BY_VALUE}
RETRY_SECONDS = 10  # a failed reconcile is retried this soon (a 429's Retry-After instead, when given)
GIVE_UP_AFTER = 5  # failures other than throttling retried this often, then left to the next change
# Reconciles at once: one per handler thread (main.py sizes kopf's pool with it); a reconcile
# mostly waits on the API server.
RECONCILE_WORKERS = 16
INDEXES = ("mopt_index", "job_index", "pod_index", "legacy_job_index")
JobRef = tuple[str, str]  # ("job", a Job's uid): where pods of a Job without the uid label are kept


def _owner_uid(meta: Mapping[str, Any], kind: str, api_version_prefix: str) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == kind and str(ref.get("apiVersion", "")).startswith(api_version_prefix) \
                and ref.get("uid"):
            return str(ref["uid"])
    return None


def resource_uid(body: Mapping[str, Any]) -> str | None:
    """The UID of the resource a Job (or pod) belongs to: its uid label, else the Job's owner
    reference to a ModelOptimization; None for a pod of an older operator (see ``job_uid``)."""
    uid = _uid_label(body)
    return uid if uid else _owner_uid(body.get("metadata") or {}, KIND, f"{GROUP}/")


def job_uid(pod: Mapping[str, Any]) -> str | None:
    """The UID of the Job that owns ``pod`` (its owner reference), or None."""
    return _owner_uid(pod.get("metadata") or {}, "Job", "batch/")


def pod_key(pod: Mapping[str, Any]) -> Key | JobRef | None:
    """Where the pod index keeps a pod: under its resource's UID, or (older operators' pods)
    under its Job's UID until the view joins them."""
    uid = resource_uid(pod)
    if uid:
        return uid
    owner = job_uid(pod)
    return ("job", owner) if owner else None


def _uid_label(body: Mapping[str, Any]) -> str | None:
    """The resource UID a Job or pod of this operator carries in its label; None for older ones."""
    uid = ((body.get("metadata") or {}).get("labels") or {}).get(OPTIMIZATION_UID_LABEL)
    return str(uid) if uid else None


def _view(uid: Key, mopt_index: kopf.Index[Any, Any], job_index: kopf.Index[Any, Any],
          pod_index: kopf.Index[Any, Any]) -> View | None:
    bodies = list(mopt_index.get(uid, ()))
    if not bodies:
        return None
    jobs = list(job_index.get(uid, ()))
    pods: dict[str, list[dict[str, Any]]] = {}
    found = list(pod_index.get(uid, ()))
    for job in jobs:
        if _uid_label(job) is None:
            found += pod_index.get(("job", str(job["metadata"].get("uid"))), ())
    for pod in found:
        job_name = job_name_of_pod(pod)
        if job_name:
            pods.setdefault(job_name, []).append(pod)
    return View(body=resource_from_record(bodies[0]), jobs=jobs, pods_by_job=pods)


def _namespace(uid: Key, indexes: Mapping[str, Any]) -> str:
    records = list(indexes["mopt_index"].get(uid, ()))
    return str(records[0]["metadata"].get("namespace", "")) if records else ""


def needs_reconcile(event_type: str | None, body: Mapping[str, Any]) -> bool:
    """Whether a watch event of a resource asks for a reconcile: listed (the operator started),
    created, or a generation its status has not observed (the spec changed); never while it is
    being deleted. The operator's own status writes, and edits of labels or annotations, change
    no generation and ask nothing."""
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return False  # being deleted: the garbage collector takes its Jobs
    if event_type in (None, "ADDED"):
        return True
    generation = body.get("metadata", {}).get("generation")
    observed = (body.get("status") or {}).get("observedGeneration")
    return generation is None or generation != observed


def retry_after(error: BaseException) -> float | None:
    """Seconds the API server asked to wait (429 Too Many Requests), else None."""
    if not isinstance(error, ApiException) or error.status != 429:
        return None
    header = (error.headers or {}).get("Retry-After")
    try:
        return max(1.0, float(header)) if header else float(RETRY_SECONDS)
    except ValueError:
        return float(RETRY_SECONDS)


class Retries:
    """Failed reconciles in a row per resource, and when to try each again. Used only from the
    event loop's thread."""

    def __init__(self) -> None:
        self._failures: dict[Key, int] = {}

    def after(self, uid: Key, error: BaseException) -> float | None:
        """Seconds until the next attempt after ``error``, or None: give up until the next change.

        A 429 is retried however often, each time after the server's Retry-After (throttling
        passes; a throttled server sees one retry per resource per Retry-After). Anything else is
        retried every RETRY_SECONDS until it failed GIVE_UP_AFTER times in a row."""
        delay = retry_after(error)
        if delay is not None:
            return delay
        failures = self._failures[uid] = self._failures.get(uid, 0) + 1
        if failures >= GIVE_UP_AFTER:
            del self._failures[uid]
            return None
        return float(RETRY_SECONDS)

    def succeeded(self, uid: Key) -> None:
        self._failures.pop(uid, None)

    forget = succeeded

    def __len__(self) -> int:
        return len(self._failures)


class WorkQueue:
    """Resources waiting for a reconcile, each at most once, drained by a fixed number of tasks;
    a failed one comes back after a delay (``add_later``).

    A handler only adds the resource's UID and returns, so kopf's worker for the Job, pod or
    resource that changed ends at once and lets go of that object's body. Handlers that awaited
    the reconcile themselves held every body of a burst behind 16 handler threads: at 5,000
    resources (10,000 Jobs, and their pods) the operator grew past 630 MB, over the chart's
    512Mi. Queued, a burst costs a UID per resource, and ten changes to one resource before its
    turn are one reconcile (it reads the watches' indexes, which are current by then).

    The tasks are created by the first ``add``, in that handler's context, so they carry kopf's
    context (the Events the reconciler posts need it) like every handler does; a delayed retry
    runs in those same tasks, so its Events are posted like any other."""

    def __init__(self, workers: int, work: Callable[[Key], Awaitable[None]]) -> None:
        self._workers = workers
        self._work = work
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._later: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, uid: Key) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._drain(), name=f"kubeopt-reconcile-{i}")
                           for i in range(self._workers)]
        if uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def add_later(self, uid: Key, seconds: float) -> None:
        """Queue ``uid`` in ``seconds`` (a retry); replaces a retry already waiting for it."""
        self.cancel_later(uid)
        self._later[uid] = asyncio.get_running_loop().call_later(seconds, self._due, uid)

    def cancel_later(self, uid: Key) -> None:
        """Drop the retry waiting for ``uid`` (it was reconciled since, or it is gone)."""
        handle = self._later.pop(uid, None)
        if handle is not None:
            handle.cancel()

    def waiting(self, uid: Key) -> bool:
        """Whether a retry of ``uid`` is waiting for its time."""
        return uid in self._later

    def _due(self, uid: Key) -> None:
        del self._later[uid]
        self.add(uid)

    def __len__(self) -> int:
        return len(self._queued)

    async def join(self) -> None:
        """Return once every queued resource was reconciled (tests)."""
        await self._queue.join()

    async def stop(self) -> None:
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _drain(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)  # a change from now on queues it again
            try:
                await self._work(uid)
            except Exception:  # _work schedules its own retries; never lose a worker
                log.exception("reconcile worker: unexpected failure for resource %s", uid)
            finally:
                self._queue.task_done()


class _Executor:
    """kopf's thread pool (``settings.execution.executor``), known once the operator started;
    async handlers run the (blocking) reconciler there, as kopf runs sync handlers."""

    def __init__(self) -> None:
        self.settings: kopf.OperatorSettings | None = None

    async def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the pool with this handler's context (kopf.event works there)."""
        context = contextvars.copy_context()
        executor = self.settings.execution.executor if self.settings is not None else None
        await asyncio.get_running_loop().run_in_executor(executor, functools.partial(context.run, fn))


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Register every handler on ``registry``; they act through ``reconciler``."""
    marks = Retries()
    pool = _Executor()

    @kopf.on.startup(id="executor", registry=registry)
    def remember_executor(settings: kopf.OperatorSettings, **_: Any) -> None:
        pool.settings = settings

    @kopf.on.login(id="login", registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            return None
        return bounded_session(info, connection_limit(reconciler.settings.namespaces))

    # Index functions are coroutines: kopf runs a plain function in its thread pool behind a
    # shielded task, and these run on every watch event of every resource, Job and pod (at 1,000
    # resources, ~5,000 calls) to pick a few fields.
    @kopf.index(GROUP, VERSION, PLURAL, id="mopt_index", registry=registry)
    async def mopt_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        return {str(kwargs["uid"]): resource_record(kwargs["body"])}

    @kopf.index("batch", "v1", "jobs", labels=OWNED, id="job_index", registry=registry)
    async def job_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        uid = resource_uid(kwargs["body"])
        return {uid: job_record(kwargs["body"])} if uid else {}

    @kopf.index("batch", "v1", "jobs", labels={**OWNED, OPTIMIZATION_UID_LABEL: kopf.ABSENT},
                id="legacy_job_index", registry=registry)
    async def legacy_job_index(**kwargs: Any) -> dict[str, str]:
        uid = resource_uid(kwargs["body"])
        return {str(kwargs["uid"]): uid} if uid else {}

    @kopf.index("", "v1", "pods", labels=OWNED, id="pod_index", registry=registry)
    async def pod_index(**kwargs: Any) -> dict[Key | JobRef, dict[str, Any]]:
        key = pod_key(kwargs["body"])
        return {key: pod_record(kwargs["body"])} if key else {}

    def run(uid: Key, indexes: Mapping[str, Any]) -> None:
        reconciler.reconcile(uid, lambda: _view(uid, indexes["mopt_index"], indexes["job_index"],
                                                indexes["pod_index"]))

    def counted(uid: Key, indexes: Mapping[str, Any]) -> None:
        """``run``; a failure is counted by its cause before it is retried."""
        try:
            run(uid, indexes)
        except Exception as error:
            cause = "error" if retry_after(error) is None else "throttled"
            reconciler.metrics.reconcile_retries.labels(namespace=_namespace(uid, indexes), cause=cause).inc()
            raise

    live_indexes: dict[str, Any] = {}  # kopf's indexes (live views), as the first handler got them

    async def reconcile_or_retry(uid: Key) -> None:
        """Reconcile now; on failure, queue it again after the delay ``marks`` gives (one retry
        waiting per resource, whatever triggered it)."""
        try:
            await pool.run(functools.partial(counted, uid, live_indexes))
        except Exception as error:
            delay = marks.after(uid, error)
            if delay is None:
                log.error("reconciling resource %s failed %d times in a row (%s: %s); waiting for its next "
                          "change", uid, GIVE_UP_AFTER, type(error).__name__, error)
                return
            log.warning("reconciling resource %s failed (%s: %s); retrying in %gs", uid, type(error).__name__,
                        error, delay)
            queue.add_later(uid, delay)
        else:
            marks.succeeded(uid)
            queue.cancel_later(uid)  # up to date: a waiting retry has nothing left to do

    queue = WorkQueue(RECONCILE_WORKERS, reconcile_or_retry)

    def remember_indexes(kwargs: Mapping[str, Any]) -> None:
        if not live_indexes:
            live_indexes.update({name: kwargs[name] for name in INDEXES})

    def enqueue(uid: Key | None, kwargs: Mapping[str, Any]) -> None:
        remember_indexes(kwargs)
        if uid is not None:
            queue.add(uid)

    @kopf.on.cleanup(id="stop-queue", registry=registry)
    async def stop_queue(**_: Any) -> None:
        await queue.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, id="resource_changed", registry=registry)
    async def on_resource(**kwargs: Any) -> None:
        uid = str(kwargs["uid"])
        if kwargs["type"] == "DELETED":
            # Jobs go through their owner references (garbage collector) and artifacts stay, so
            # the operator only forgets the resource.
            marks.forget(uid)
            queue.cancel_later(uid)
            await pool.run(functools.partial(reconciler.forget, uid, kwargs["namespace"], kwargs["name"]))
        elif needs_reconcile(kwargs["type"], kwargs["body"]):
            enqueue(uid, kwargs)

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED, id="job_changed", registry=registry)
    async def on_job(**kwargs: Any) -> None:
        uid = resource_uid(kwargs["body"])
        if kwargs["type"] == "ADDED" and uid is not None and reconciler.expects(uid, str(kwargs["name"])):
            # The Job a reconcile just created, as it created it (its status was written with its
            # name): reconciling for it changed nothing, and was 1,000 of 2,500 reconciles at 1,000
            # resources. The Job's next change (started, finished) queues the resource as usual.
            remember_indexes(kwargs)
            return
        enqueue(uid, kwargs)

    @kopf.on.event("", "v1", "pods", labels=OWNED, id="pod_changed", registry=registry)
    async def on_pod(**kwargs: Any) -> None:
        uid = resource_uid(kwargs["body"])
        if uid is None:  # a pod of an older operator: its Job knows the resource
            owner = job_uid(kwargs["body"])
            uid = next(iter(kwargs["legacy_job_index"].get(owner, ())), None) if owner else None
        enqueue(uid, kwargs)
