"""What to change so the cluster matches the spec: Jobs to create, delete, (un)suspend and patch.

Pure. A Job belongs to the current spec when its name is the one its target's work has now
(``names.work``); a change of ``suspend``, ``parallelism`` or ``ttlSecondsAfterFinished``
keeps every name, so it never restarts a Job. Jobs of older work (or of a target no longer in
the spec) that still run are deleted; finished ones stay for their logs until the resource
or their TTL removes them.

At most ``parallelism`` unfinished Jobs of the current work run (are not suspended) at once,
none while ``spec.suspend`` is true. Within that budget, Jobs already running keep running
(in spec order), then suspended ones resume, then the next targets start, in spec order; a
running Job beyond the budget (suspend turned on, parallelism lowered) is suspended, which
keeps the Job and its name for later. A target whose result is recorded under its current Job
name is never started again, even after its Job was removed by ttlSecondsAfterFinished.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeopt.api.spec import ModelOptimizationSpec, Target
from kubeopt.api.status import Phase, TargetStatus
from kubeopt.controller.jobs import Owner, target_job_name
from kubeopt.controller.observe import job_finished


@dataclass(frozen=True)
class Plan:
    create: tuple[Target, ...] = ()
    delete: tuple[str, ...] = ()
    suspend: tuple[tuple[str, bool], ...] = ()  # (Job name, spec.suspend it should have)
    ttl: tuple[tuple[str, int | None], ...] = ()  # (Job name, ttlSecondsAfterFinished it should have)


def expected_names(owner: Owner, spec: ModelOptimizationSpec) -> dict[str, str]:
    """Target name -> the Job name of its current work."""
    return {target.name: target_job_name(owner, target) for target in spec.targets}


def _suspended(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def make_plan(owner: Owner, spec: ModelOptimizationSpec, jobs: Sequence[Mapping[str, Any]],
              recorded: Mapping[str, TargetStatus], in_flight: Collection[str] = ()) -> Plan:
    """Decide the changes; ``in_flight`` are Job names created but not yet seen by the watch."""
    wanted = expected_names(owner, spec)
    order = [wanted[target.name] for target in spec.targets]
    current = set(order)
    by_name = {str(job["metadata"]["name"]): job for job in jobs}
    delete = tuple(sorted(n for n, job in by_name.items() if n not in current and not job_finished(dict(job))))
    unfinished = [n for n in order if n in by_name and not job_finished(dict(by_name[n]))]
    running = [n for n in unfinished if not _suspended(by_name[n])]
    running += [n for n in order if n in in_flight and n not in by_name]  # created unsuspended
    held = [n for n in unfinished if _suspended(by_name[n])]

    slots = 0 if spec.suspend else spec.parallelism
    suspend = [(n, True) for n in running[slots:] if n in by_name]
    slots = max(0, slots - len(running))
    resume = held[:slots]
    slots -= len(resume)
    create: list[Target] = []
    for target in spec.targets:
        if slots <= 0:
            break
        name = wanted[target.name]
        if name in by_name or name in in_flight or _recorded_done(recorded.get(target.name), name):
            continue
        create.append(target)
        slots -= 1
    ttl = tuple((n, spec.ttl_seconds_after_finished) for n in order
                if n in by_name and (by_name[n].get("spec") or {}).get("ttlSecondsAfterFinished")
                != spec.ttl_seconds_after_finished)
    return Plan(create=tuple(create), delete=delete, suspend=(*suspend, *((n, False) for n in resume)), ttl=ttl)


def _recorded_done(previous: TargetStatus | None, job_name: str) -> bool:
    return previous is not None and previous.job_name == job_name and previous.phase in (Phase.SUCCEEDED,
                                                                                          Phase.FAILED)
