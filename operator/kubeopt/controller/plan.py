"""What to change so the cluster matches the spec: Jobs to create, delete and (un)suspend.

Pure. Jobs of an older generation (or of a target no longer in the spec) that still run are
deleted; finished ones stay for their logs until the resource or their TTL removes them. At
most ``parallelism`` target Jobs of the current generation run at once; the next targets
start, in spec order, as others finish. A target whose result is recorded under its current
Job name is never started again, even after its Job was removed by ttlSecondsAfterFinished.
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
    suspend: tuple[tuple[str, bool], ...] = ()


def expected_names(owner: Owner, spec: ModelOptimizationSpec) -> dict[str, str]:
    """Target name -> the Job name it has in this generation."""
    return {target.name: target_job_name(owner, target) for target in spec.targets}


def make_plan(owner: Owner, spec: ModelOptimizationSpec, jobs: Sequence[Mapping[str, Any]],
              recorded: Mapping[str, TargetStatus], in_flight: Collection[str] = ()) -> Plan:
    """Decide the changes; ``in_flight`` are Job names created but not yet seen by the watch."""
    wanted = expected_names(owner, spec)
    current = set(wanted.values())
    by_name = {str(job["metadata"]["name"]): job for job in jobs}
    delete = tuple(sorted(n for n, job in by_name.items() if n not in current and not job_finished(dict(job))))
    running = {n for n in current & by_name.keys() if not job_finished(dict(by_name[n]))}
    running |= set(in_flight) & current
    suspend = tuple(
        (name, spec.suspend) for name in sorted(running & by_name.keys())
        if bool((by_name[name].get("spec") or {}).get("suspend")) != spec.suspend
    )
    if spec.suspend:
        return Plan(delete=delete, suspend=suspend)
    create: list[Target] = []
    slots = spec.parallelism - len(running)
    for target in spec.targets:
        name = wanted[target.name]
        if slots <= 0:
            break
        if name in by_name or name in in_flight or _recorded_done(recorded.get(target.name), name):
            continue
        create.append(target)
        slots -= 1
    return Plan(create=tuple(create), delete=delete, suspend=suspend)


def _recorded_done(previous: TargetStatus | None, job_name: str) -> bool:
    return previous is not None and previous.job_name == job_name and previous.phase in (Phase.SUCCEEDED,
                                                                                          Phase.FAILED)
