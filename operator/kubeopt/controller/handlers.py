"""kopf wiring: indexes over resources, Jobs and pods; handlers that call the reconciler.

Everything is driven by watches. Three indexes keep what the watches saw (kopf fills them
before any other handler runs, so a restarted operator knows its Jobs before it acts), all
keyed by the resource's UID: resources by their own, Jobs and pods by the
``kubeopt.io/optimization-uid`` label. A Job of an older operator, without that label, is
found by its owner reference; its pods by their Job's owner reference (a fourth, small index
maps such Jobs to their resource). A name is never read back from a label: the human label
holds a shortened form of a long name.

A change of the resource (create, update, resume) or of one of its Jobs or pods queues that
resource for a reconcile (``WorkQueue``: once however many changes, 16 at a time); its deletion
drops its metric series. Every retry goes through kopf: a failed
reconcile, whatever triggered it, marks the resource for its ``retry`` daemon, which re-runs it
and raises ``kopf.TemporaryError`` until it succeeds, with the server's Retry-After as the delay
on a 429, so kopf calls it again after that delay. One retry loop per resource keeps a throttled
API server's load down. Events are therefore always posted from kopf's context. The daemon is
an asyncio task that awaits its mark and costs no CPU while nothing is pending; like every kopf
daemon it puts kopf's finalizer on the resource. Handlers are registered on a registry passed
in, never the global one.
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
from kubeopt.controller.records import job_record, pod_record, resource_record

log = logging.getLogger(__name__)
OWNED = {MANAGED_BY: MANAGED_BY_VALUE}
RETRY_SECONDS = 10  # a failed reconcile is retried this soon (a 429's Retry-After instead, when given)
GIVE_UP_AFTER = 5  # failures other than throttling retried this often, then left to the next change
CANCEL_SECONDS = 5.0
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
    return View(body=bodies[0], jobs=jobs, pods_by_job=pods)


def _namespace(uid: Key, indexes: Mapping[str, Any]) -> str:
    records = list(indexes["mopt_index"].get(uid, ()))
    return str(records[0]["metadata"].get("namespace", "")) if records else ""


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
    """Resources whose reconcile after a Job or pod change failed, one wake-up per resource for
    its ``retry`` daemon, and how often its retries failed. Used only from the event loop's
    thread (async handlers)."""

    def __init__(self) -> None:
        self._marks: dict[Key, asyncio.Event] = {}
        self._failures: dict[Key, int] = {}

    def mark(self, uid: Key) -> None:
        self._marks.setdefault(uid, asyncio.Event()).set()

    def pending(self, uid: Key) -> bool:
        mark = self._marks.get(uid)
        return mark is not None and mark.is_set()

    def failed(self, uid: Key) -> int:
        """Count a failed retry; returns how many failed in a row."""
        self._failures[uid] = self._failures.get(uid, 0) + 1
        return self._failures[uid]

    def done(self, uid: Key) -> None:
        self._failures.pop(uid, None)
        mark = self._marks.get(uid)
        if mark is not None:
            mark.clear()

    def forget(self, uid: Key) -> None:
        self._marks.pop(uid, None)
        self._failures.pop(uid, None)

    async def wait(self, uid: Key) -> None:
        """Return once ``uid`` is marked; kopf cancels the waiting daemon when it stops."""
        await self._marks.setdefault(uid, asyncio.Event()).wait()


class WorkQueue:
    """Resources waiting for a reconcile, each at most once, drained by a fixed number of tasks.

    A handler only adds the resource's UID and returns, so kopf's worker for the Job, pod or
    resource that changed ends at once and lets go of that object's body. Handlers that awaited
    the reconcile themselves held every body of a burst behind 16 handler threads: at 5,000
    resources (10,000 Jobs, and their pods) the operator grew past 630 MB, over the chart's
    512Mi. Queued, a burst costs a UID per resource, and ten changes to one resource before its
    turn are one reconcile (it reads the watches' indexes, which are current by then).

    The tasks are created by the first ``add``, in that handler's context, so they carry kopf's
    context (the Events the reconciler posts need it) like every handler does."""

    def __init__(self, workers: int, work: Callable[[Key], Awaitable[None]]) -> None:
        self._workers = workers
        self._work = work
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, uid: Key) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._drain(), name=f"kubeopt-reconcile-{i}")
                           for i in range(self._workers)]
        if uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def __len__(self) -> int:
        return len(self._queued)

    async def join(self) -> None:
        """Return once every queued resource was reconciled (tests)."""
        await self._queue.join()

    async def stop(self) -> None:
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
            except Exception:  # _work marks failures for the retry daemon; never lose a worker
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


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler, retries: Retries | None = None) -> None:
    """Register every handler on ``registry``; they act through ``reconciler``."""
    marks = retries if retries is not None else Retries()
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

    @kopf.index(GROUP, VERSION, PLURAL, id="mopt_index", registry=registry)
    def mopt_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        return {str(kwargs["uid"]): resource_record(kwargs["body"])}

    @kopf.index("batch", "v1", "jobs", labels=OWNED, id="job_index", registry=registry)
    def job_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
        uid = resource_uid(kwargs["body"])
        return {uid: job_record(kwargs["body"])} if uid else {}

    @kopf.index("batch", "v1", "jobs", labels={**OWNED, OPTIMIZATION_UID_LABEL: kopf.ABSENT},
                id="legacy_job_index", registry=registry)
    def legacy_job_index(**kwargs: Any) -> dict[str, str]:
        uid = resource_uid(kwargs["body"])
        return {str(kwargs["uid"]): uid} if uid else {}

    @kopf.index("", "v1", "pods", labels=OWNED, id="pod_index", registry=registry)
    def pod_index(**kwargs: Any) -> dict[Key | JobRef, dict[str, Any]]:
        key = pod_key(kwargs["body"])
        return {key: pod_record(kwargs["body"])} if key else {}

    def run(uid: Key, indexes: Mapping[str, Any]) -> None:
        reconciler.reconcile(uid, lambda: _view(uid, indexes["mopt_index"], indexes["job_index"],
                                                indexes["pod_index"]))

    def checked(uid: Key, indexes: Mapping[str, Any]) -> None:
        """``run``; a failure is counted (kopf retries it), a 429 becomes kopf's TemporaryError
        carrying the server's delay."""
        try:
            run(uid, indexes)
        except Exception as error:
            delay = retry_after(error)
            cause = "error" if delay is None else "throttled"
            reconciler.metrics.reconcile_retries.labels(namespace=_namespace(uid, indexes), cause=cause).inc()
            if delay is None:
                raise
            raise kopf.TemporaryError(f"the API server is throttling writes (429); retrying in {delay:g}s",
                                      delay=delay) from error

    live_indexes: dict[str, Any] = {}  # kopf's indexes (live views), as the first handler got them

    async def reconcile_or_mark(uid: Key) -> None:
        """Reconcile now; on failure, leave it to the resource's retry daemon (one retry loop per
        resource, whatever the trigger, so a throttled API server sees one retry per Retry-After)."""
        try:
            await pool.run(functools.partial(checked, uid, live_indexes))
        except Exception as error:
            log.warning("reconciling resource %s failed (%s: %s); its retry daemon tries again", uid,
                        type(error).__name__, error)
            marks.mark(uid)
        else:
            marks.done(uid)  # up to date: a pending retry has nothing left to do

    queue = WorkQueue(RECONCILE_WORKERS, reconcile_or_mark)

    def enqueue(uid: Key | None, kwargs: Mapping[str, Any]) -> None:
        if not live_indexes:
            live_indexes.update({name: kwargs[name] for name in INDEXES})
        if uid is not None:
            queue.add(uid)

    @kopf.on.cleanup(id="stop-queue", registry=registry)
    async def stop_queue(**_: Any) -> None:
        await queue.stop()

    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="reconcile", registry=registry)
    async def on_change(**kwargs: Any) -> None:
        enqueue(str(kwargs["uid"]), kwargs)

    # kopf's finalizer (for the retry daemon) only holds the resource until its daemon stopped:
    # Jobs go through their owner references (garbage collector) and artifacts stay, so the
    # operator forgets the resource once the watch reports it gone.
    @kopf.on.event(GROUP, VERSION, PLURAL, id="forget", registry=registry)
    async def on_gone(**kwargs: Any) -> None:
        if kwargs["type"] == "DELETED":
            marks.forget(str(kwargs["uid"]))
            await pool.run(functools.partial(
                reconciler.forget, str(kwargs["uid"]), kwargs["namespace"], kwargs["name"]))

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED, id="job_changed", registry=registry)
    async def on_job(**kwargs: Any) -> None:
        enqueue(resource_uid(kwargs["body"]), kwargs)

    @kopf.on.event("", "v1", "pods", labels=OWNED, id="pod_changed", registry=registry)
    async def on_pod(**kwargs: Any) -> None:
        uid = resource_uid(kwargs["body"])
        if uid is None:  # a pod of an older operator: its Job knows the resource
            owner = job_uid(kwargs["body"])
            uid = next(iter(kwargs["legacy_job_index"].get(owner, ())), None) if owner else None
        enqueue(uid, kwargs)

    @kopf.daemon(GROUP, VERSION, PLURAL, id="retry", backoff=RETRY_SECONDS, cancellation_timeout=CANCEL_SECONDS,
                 registry=registry)
    async def retry(**kwargs: Any) -> None:
        """Re-run a reconcile marked as failed until it succeeds: a failure raises, and kopf calls
        this again after the error's delay (Retry-After) or ``backoff``."""
        uid, stopped = str(kwargs["uid"]), kwargs["stopped"]
        while not stopped:
            try:
                await marks.wait(uid)
            except asyncio.CancelledError:
                if stopped:  # kopf stops it (the resource is being deleted, the operator exits): no warning
                    return
                raise
            try:
                await pool.run(functools.partial(checked, uid, kwargs))
            except kopf.TemporaryError:
                marks.mark(uid)  # still pending, even if a Job or pod change succeeded meanwhile
                raise  # throttled: every retry waits as long as the server asks, however many
            except Exception as error:
                marks.mark(uid)
                if marks.failed(uid) >= GIVE_UP_AFTER:
                    log.error("reconciling resource %s failed %d times in a row (%s: %s); waiting for the next "
                              "change", uid, GIVE_UP_AFTER, type(error).__name__, error)
                    marks.done(uid)
                    continue
                raise kopf.TemporaryError(f"reconcile failed ({type(error).__name__}: {error}); retrying in "
                                          f"{RETRY_SECONDS}s", delay=RETRY_SECONDS) from error
            marks.done(uid)
