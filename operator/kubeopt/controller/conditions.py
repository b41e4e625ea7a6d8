"""kstatus conditions: Ready, Reconciling and Stalled, each with observedGeneration.

- Jobs still to run or running: Reconciling=True, Ready=False.
- spec.suspend with targets unfinished: Ready=False and Reconciling=False, both with reason
  Suspended (the Jobs are kept, suspended, and nothing progresses until it is false again).
- Everything finished and at least one target succeeded: Ready=True.
- Everything finished and none succeeded, or every unfinished target blocked behind a pod that
  cannot be scheduled: Stalled=True with the reason a person can act on.
A condition's lastTransitionTime changes only when its status does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubeopt.api.status import Best, Condition, Phase, TargetStatus

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SUSPENDED = "Suspended"


@dataclass(frozen=True)
class Verdict:
    """The three conditions' statuses with one reason and message between them."""

    ready: bool
    reconciling: bool
    stalled: bool
    reason: str
    message: str


def _finished(target: TargetStatus) -> bool:
    return target.phase in (Phase.SUCCEEDED, Phase.FAILED)


def verdict(targets: Sequence[TargetStatus], best: Best | None, suspended: bool,
            invalid: str | None = None) -> Verdict:
    """Decide the conditions from the targets' states."""
    if invalid is not None:
        return Verdict(False, False, True, "InvalidSpec", invalid)
    done = [t for t in targets if _finished(t)]
    succeeded = [t for t in done if t.phase is Phase.SUCCEEDED]
    if targets and len(done) == len(targets):
        if succeeded:
            best_text = f"; best {best.target} ({best.speedup}x)" if best and best.speedup else ""
            return Verdict(True, False, False, "Succeeded",
                           f"{len(succeeded)}/{len(targets)} targets succeeded{best_text}")
        first = done[0]
        return Verdict(False, False, True, first.reason or "Failed",
                       f"every target failed; {first.name}: {first.message or first.reason}")
    if suspended:
        waiting = len(targets) - len(done)
        return Verdict(False, False, False, SUSPENDED,
                       f"Suspended: spec.suspend is true; {waiting}/{len(targets)} targets unfinished, their "
                       "Jobs suspended and kept, none started; set it to false to resume")
    unfinished = [t for t in targets if not _finished(t)]
    stuck = [t for t in unfinished if t.reason == "Unschedulable"]
    running = [t for t in unfinished if t.phase is Phase.RUNNING]
    if stuck and not running:
        first = stuck[0]
        return Verdict(False, False, True, "Unschedulable", f"{first.name}: {first.message}")
    return Verdict(False, True, False, "Progressing",
                   f"{len(done)}/{len(targets)} targets finished, {len(running)} running")


def conditions(result: Verdict, generation: int, previous: Sequence[Condition], now: str) -> list[Condition]:
    """Ready, Reconciling and Stalled for ``generation``; transition times kept where unchanged."""
    before = {c.type: c for c in previous}
    wanted = [
        (READY, result.ready, result.reason if result.ready else _not_ready_reason(result)),
        (RECONCILING, result.reconciling, result.reason if result.reconciling or result.reason == SUSPENDED
         else "Idle"),
        (STALLED, result.stalled, result.reason if result.stalled else "NotStalled"),
    ]
    out: list[Condition] = []
    for kind, flag, reason in wanted:
        status = "True" if flag else "False"
        old = before.get(kind)
        since = old.last_transition_time if old is not None and old.status == status else now
        out.append(Condition(type=kind, status=status, reason=reason, message=result.message,
                             observed_generation=generation, last_transition_time=since or now))
    return out


def _not_ready_reason(result: Verdict) -> str:
    return result.reason if result.stalled or result.reason == SUSPENDED else "Reconciling"
