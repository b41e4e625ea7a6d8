"""One reconciliation of a ModelOptimization: act on the plan, observe, write status, tell.

The only module here that writes to the API server (through a ``Cluster`` passed in). It
runs for the resource's own changes and for every change of its Jobs and pods, serialized
per resource. A resource is known by its UID (a resource deleted and created again under the
same name is another one, with its own memory). What it reads comes from kopf's indexes (the
watches' caches), so nothing is polled; Jobs just created but not yet seen by the watch are
remembered so that parallelism holds and nothing is created twice. Events are posted only
after the status that they announce was written, so a reconcile that fails on the write (a
429 under load) and is retried announces each transition once. A new generation that keeps a target's work (``suspend``,
``parallelism``, ``ttlSecondsAfterFinished``) keeps its Job, its in-flight record and its
recorded result; status always speaks of the current generation.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from kubeopt.api.load import describe
from kubeopt.api.spec import ModelOptimizationSpec
from kubeopt.api.status import ModelOptimizationStatus, Phase, TargetStatus
from kubeopt.controller.conditions import conditions, verdict
from kubeopt.controller.jobs import JobRejected, Owner, build_job
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.observe import Observation, observe
from kubeopt.controller.plan import expected_names, make_plan
from kubeopt.controller.settings import OperatorSettings
from kubeopt.controller.status import choose_best, overall_phase, target_status

log = logging.getLogger(__name__)
Key = str  # the resource's metadata.uid


class Cluster(Protocol):
    """The writes a reconciliation makes; ``kubeopt.controller.cluster`` implements them."""

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None: ...
    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None: ...


@dataclass(frozen=True)
class View:
    """What the watches know of one resource right now."""

    body: Mapping[str, Any]
    jobs: Sequence[Mapping[str, Any]]
    pods_by_job: Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass(slots=True)
class _Memory:
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards running and again
    running: bool = False  # a thread is reconciling this resource
    again: bool = False  # something changed while it ran: it reconciles once more before it returns
    in_flight: set[str] = field(default_factory=set)
    # The status last written, as compact JSON: the watch may not have delivered it yet, and it
    # is what the next reconcile compares with and announces transitions from. Kept for every
    # resource, so as text (about a third of the dicts' size), read back on the next reconcile.
    status: str | None = None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Reconciles resources one at a time each; safe to call from kopf's handler threads."""

    def __init__(self, settings: OperatorSettings, metrics: Metrics, cluster: Cluster,
                 now: Callable[[], str] = _now) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cluster = cluster
        self.now = now
        self._memories: dict[Key, _Memory] = {}
        self._phases: dict[Key, str] = {}
        # How many resources are in each phase, kept as phases change: counting ``_phases`` on
        # every write cost a pass over every resource per reconcile (quadratic in a burst).
        self._phase_counts: Counter[str] = Counter()
        self._names: dict[Key, tuple[str, str]] = {}  # uid -> (namespace, name), for metric series
        self._guard = threading.Lock()

    def _memory(self, key: Key) -> _Memory:
        with self._guard:
            return self._memories.setdefault(key, _Memory())

    def forget(self, uid: Key, namespace: str, name: str) -> None:
        """Drop a deleted resource's memory; its metric series too, unless a newer resource of the
        same name (another UID) already reports under them."""
        with self._guard:
            self._memories.pop(uid, None)
            self._count_phase(self._phases.pop(uid, None), None)
            self._names.pop(uid, None)
            reused = (namespace, name) in self._names.values()
        if not reused:
            self.metrics.forget(namespace, name)

    def expects(self, key: Key, job_name: str) -> bool:
        """Whether ``job_name`` is a Job this reconciler created for ``key`` and has not seen since:
        its watch event (ADDED) then shows it as created and tells the resource nothing new."""
        with self._guard:
            memory = self._memories.get(key)
        return memory is not None and job_name in memory.in_flight  # one set lookup: atomic under the GIL

    def reconcile(self, key: Key, view: Callable[[], View | None]) -> None:
        """Bring one resource's Jobs and status up to date, reading ``view`` afresh each pass.

        One thread at a time reconciles a resource. A call that finds another running returns at
        once and leaves it one more pass (its ``view`` reads the same watch caches), so a burst of
        Job and pod changes never parks kopf's handler threads on a lock: with every thread
        waiting behind one slow reconcile, even the watches' index handlers could not run."""
        memory = self._memory(key)
        with memory.lock:
            if memory.running:
                memory.again = True
                return
            memory.running, memory.again = True, False
        try:
            while True:
                current = view()
                if current is not None:
                    self._reconcile_counted(key, current, memory)
                with memory.lock:
                    if not memory.again:
                        memory.running = False
                        return
                    memory.again = False
        except BaseException:
            with memory.lock:
                memory.running = False  # a pass left pending is retried with this failure's
            raise

    def _reconcile_counted(self, key: Key, view: View, memory: _Memory) -> None:
        try:
            self._reconcile(key, view, memory)
        except Exception:
            self.metrics.reconcile_errors.labels(namespace=view.body["metadata"].get("namespace", "")).inc()
            raise

    def _reconcile(self, key: Key, view: View, memory: _Memory) -> None:
        body = view.body
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            # Being deleted (a foreground deletion waits for its Jobs): a reconcile now would
            # create again the Jobs the garbage collector is deleting.
            return
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=key,
                      generation=int(meta.get("generation") or 1), spec=dict(body.get("spec") or {}))
        previous = self._previous(body, memory)
        try:
            spec = ModelOptimizationSpec.model_validate(owner.spec)
        except ValidationError as error:
            self._write(key, body, memory, owner, self._invalid(owner, previous, describe(error)))
            return
        rejected = self._act(view, owner, spec, previous, memory)
        if rejected:
            # A refused Job's failure is the target's record from now on; its Event is posted,
            # so _announce compares against it and does not announce it again.
            kept = [t for t in previous.targets if t.name not in rejected]
            previous = previous.model_copy(update={"targets": kept + list(rejected.values())})
        status = self._status(view, owner, spec, previous)
        self._write(key, body, memory, owner, status)
        self._announce(body, owner, previous, status)

    def _previous(self, body: Mapping[str, Any], memory: _Memory) -> ModelOptimizationStatus:
        if memory.status is not None:
            return ModelOptimizationStatus.model_validate_json(memory.status)  # no dict tree in between
        return ModelOptimizationStatus.model_validate(dict(body.get("status") or {}))

    def _act(self, view: View, owner: Owner, spec: ModelOptimizationSpec, previous: ModelOptimizationStatus,
             memory: _Memory) -> dict[str, TargetStatus]:
        """Delete, suspend and create Jobs as planned; returns the failed status of each target
        whose Job the API server refused."""
        seen = {str(j["metadata"]["name"]) for j in view.jobs}
        memory.in_flight -= seen
        memory.in_flight &= set(expected_names(owner, spec).values())  # names of older work are moot
        recorded = {t.name: t for t in previous.targets}
        plan = make_plan(owner, spec, view.jobs, recorded, memory.in_flight)
        for name in plan.delete:
            self.cluster.delete_job(owner.namespace, name)
            self.cluster.event(view.body, "JobDeleted", f"deleted Job {name}: its target's work changed or is gone")
        for name, suspend in plan.suspend:
            self.cluster.patch_job(owner.namespace, name, {"suspend": suspend})
            why = "spec.suspend is true" if spec.suspend else f"spec.parallelism is {spec.parallelism}"
            self.cluster.event(view.body, "JobSuspended" if suspend else "JobResumed",
                               f"suspended Job {name} ({why})" if suspend else f"resumed Job {name}")
        for name, ttl in plan.ttl:
            self.cluster.patch_job(owner.namespace, name, {"ttlSecondsAfterFinished": ttl})
        rejected: dict[str, TargetStatus] = {}
        created: list[tuple[str, str]] = []  # (target, Job): announced together, once, even if a later create fails
        creates = list(plan.create)
        try:
            while creates:
                target = creates.pop(0)
                job = build_job(owner, spec, target, self.settings)
                # In flight before the POST: the watch may deliver the new Job before the answer,
                # and its ADDED event is recognised as this create's (handlers.on_job) only then.
                name = job["metadata"]["name"]
                memory.in_flight.add(name)
                try:
                    new = self.cluster.create_job(view.body, job)
                except JobRejected as refused:
                    memory.in_flight.discard(name)
                    # Recorded as done, so no plan creates this Job again (no retry storm); its slot
                    # is free, so plan the creates again: the next target may take it.
                    failed = recorded[target.name] = rejected[target.name] = refused.failed_status(target.name)
                    self.cluster.event(view.body, "JobRejected", f"target {target.name}: {failed.message}",
                                       warning=True)
                    creates = list(make_plan(owner, spec, view.jobs, recorded, memory.in_flight).create)
                    continue
                except BaseException:
                    memory.in_flight.discard(name)
                    raise
                if new:
                    self.metrics.jobs_created.labels(namespace=owner.namespace).inc()
                    created.append((target.name, name))
        finally:
            if created:
                self.cluster.event(view.body, "JobCreated", job_created_message(created))
        return rejected

    def _status(self, view: View, owner: Owner, spec: ModelOptimizationSpec,
                previous: ModelOptimizationStatus) -> ModelOptimizationStatus:
        names = expected_names(owner, spec)
        jobs = {str(j["metadata"]["name"]): j for j in view.jobs}
        recorded = {t.name: t for t in previous.targets}
        targets: list[TargetStatus] = []
        for target in spec.targets:
            job_name = names[target.name]
            job = jobs.get(job_name)
            seen: Observation | None = None
            if job is not None:
                pods = [dict(p) for p in view.pods_by_job.get(job_name, ())]
                seen = observe(dict(job), pods, target.name)
            targets.append(target_status(target.name, job_name, seen, recorded.get(target.name)))
        best = choose_best(targets, spec.selection)
        result = verdict(targets, best, spec.suspend)
        return ModelOptimizationStatus(
            observed_generation=owner.generation, phase=overall_phase(targets, spec.suspend),
            conditions=conditions(result, owner.generation, previous.conditions, self.now()), targets=targets,
            best=best, best_target=best.target if best else None, best_speedup=best.speedup if best else None,
        )

    def _invalid(self, owner: Owner, previous: ModelOptimizationStatus, message: str) -> ModelOptimizationStatus:
        result = verdict([], None, False, invalid=message)
        return ModelOptimizationStatus(observed_generation=owner.generation, phase=Phase.FAILED,
                                       conditions=conditions(result, owner.generation, previous.conditions,
                                                             self.now()))

    def _announce(self, body: Mapping[str, Any], owner: Owner, previous: ModelOptimizationStatus,
                  status: ModelOptimizationStatus) -> None:
        """An Event (and counters) for every target transition and for the resource's phase.

        A target's previous state counts when it was of the same Job (the same work), whatever
        the generation: a kept Job's result is neither announced nor counted twice."""
        before = {t.name: t for t in previous.targets}
        for target in status.targets:
            old = before.get(target.name)
            if old is not None and old.job_name != target.job_name:
                old = None
            if old is not None and old.phase is target.phase and old.reason == target.reason:
                continue
            if target.phase is Phase.PENDING and (old is None or target.reason is None):
                continue
            self._count(owner.namespace, target, old)
            text = f"target {target.name}: {target.phase.value}" + (f" ({target.reason})" if target.reason else "")
            if target.message and target.phase is not Phase.RUNNING:
                text += f": {target.message}"
            first = target.first_failure
            if target.phase is Phase.FAILED and first and (first.reason, first.message) != (target.reason,
                                                                                            target.message):
                text += f" (first failed attempt: {first.reason}: {first.message})"
            warning = target.phase is Phase.FAILED or target.reason in ("Unschedulable", "OOMKilled")
            self.cluster.event(body, f"Target{target.phase.value}", text[:1000], warning=warning)
        # The resource's phase is announced when it changes or a new generation is observed,
        # except to Pending: that says nothing has happened yet (the JobCreated Events say what
        # has), and it was one more write per resource, a third of them at creation.
        changed = previous.phase != status.phase or previous.observed_generation != owner.generation
        if changed and status.phase is not Phase.PENDING:
            ready = next((c for c in status.conditions if c.type == "Ready"), None)
            message = ready.message if ready else ""
            self.cluster.event(body, str(status.phase.value if status.phase else "Unknown"), message,
                               warning=status.phase is Phase.FAILED)

    def _count(self, namespace: str, target: TargetStatus, old: TargetStatus | None) -> None:
        if old is not None and old.phase is target.phase:
            return
        if target.phase is Phase.SUCCEEDED:
            self.metrics.jobs_succeeded.labels(namespace=namespace).inc()
        elif target.phase is Phase.FAILED:
            self.metrics.jobs_failed.labels(namespace=namespace, reason=target.reason or "Unknown").inc()
        else:
            return
        duration = _seconds_between(target.start_time, target.completion_time)
        if duration is not None:
            self.metrics.job_duration.labels(namespace=namespace).observe(duration)

    def _write(self, key: Key, body: Mapping[str, Any], memory: _Memory, owner: Owner,
               status: ModelOptimizationStatus) -> None:
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        for cleared in ("best", "bestTarget", "bestSpeedup"):
            wire.setdefault(cleared, None)  # a merge patch removes what a new generation lacks
        encoded = json.dumps(wire, separators=(",", ":"))
        if encoded != memory.status:
            self.cluster.patch_status(owner.namespace, owner.name, wire)
            memory.status = encoded
        self.metrics.record_targets(owner.namespace, owner.name, status.targets)
        self.metrics.record_conditions(owner.namespace, owner.name, status.conditions)
        phase = status.phase.value if status.phase else Phase.PENDING.value
        with self._guard:
            self._count_phase(self._phases.get(key), phase)
            self._phases[key] = phase
            self._names[key] = (owner.namespace, owner.name)

    def _count_phase(self, old: str | None, new: str | None) -> None:
        """Move one resource from phase ``old`` to ``new`` (None: not known) in the by-phase gauge;
        called with ``_guard`` held."""
        if old == new:
            return
        if old is not None:
            self._phase_counts[old] -= 1
        if new is not None:
            self._phase_counts[new] += 1
        self.metrics.set_phases(self._phase_counts)


def job_created_message(created: Sequence[tuple[str, str]]) -> str:
    """The JobCreated Event of one reconcile: one Event for the Jobs it created (up to
    ``parallelism``), not one each; at 1,000 resources of two targets that is 1,000 fewer writes."""
    if len(created) == 1:
        target, job = created[0]
        return f"target {target}: created Job {job}"
    return "created Jobs " + ", ".join(f"{job} (target {target})" for target, job in created)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        return (datetime.datetime.strptime(end, fmt) - datetime.datetime.strptime(start, fmt)).total_seconds()
    except ValueError:
        return None
