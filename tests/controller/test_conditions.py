from __future__ import annotations

from kubeopt.api.status import Best, Condition, Phase, TargetStatus
from kubeopt.controller.conditions import conditions, verdict


def _by_type(items: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in items}


def test_while_jobs_run_the_resource_is_reconciling_and_not_ready() -> None:
    result = verdict([TargetStatus(name="a", phase=Phase.RUNNING), TargetStatus(name="b", phase=Phase.SUCCEEDED)],
                     None, suspended=False)

    got = _by_type(conditions(result, 2, [], "now"))
    assert (got["Ready"].status, got["Reconciling"].status, got["Stalled"].status) == ("False", "True", "False")
    assert {c.observed_generation for c in got.values()} == {2}


def test_all_done_with_one_success_is_ready_and_names_the_best() -> None:
    targets = [TargetStatus(name="a", phase=Phase.SUCCEEDED), TargetStatus(name="b", phase=Phase.FAILED)]

    result = verdict(targets, Best(target="a", speedup="2.5"), suspended=False)

    got = _by_type(conditions(result, 1, [], "now"))
    assert (got["Ready"].status, got["Ready"].reason) == ("True", "Succeeded")
    assert got["Ready"].message == "1/2 targets succeeded; best a (2.5x)"
    assert (got["Reconciling"].status, got["Stalled"].status) == ("False", "False")


def test_all_failed_is_stalled_with_the_first_reason() -> None:
    targets = [TargetStatus(name="a", phase=Phase.FAILED, reason="AccuracyBudgetExceeded", message="drift")]

    got = _by_type(conditions(verdict(targets, None, suspended=False), 1, [], "now"))

    assert (got["Stalled"].status, got["Stalled"].reason) == ("True", "AccuracyBudgetExceeded")
    assert (got["Ready"].status, got["Ready"].reason) == ("False", "AccuracyBudgetExceeded")
    assert "drift" in got["Stalled"].message


def test_unschedulable_with_nothing_running_is_stalled_with_the_schedulers_message() -> None:
    targets = [TargetStatus(name="a", phase=Phase.PENDING, reason="Unschedulable", message="0/1 nodes"),
               TargetStatus(name="b", phase=Phase.PENDING)]

    got = _by_type(conditions(verdict(targets, None, suspended=False), 1, [], "now"))

    assert (got["Stalled"].status, got["Stalled"].reason) == ("True", "Unschedulable")
    assert got["Stalled"].message == "a: 0/1 nodes"


def test_one_unschedulable_target_beside_a_running_one_is_not_a_stall() -> None:
    targets = [TargetStatus(name="a", phase=Phase.PENDING, reason="Unschedulable"),
               TargetStatus(name="b", phase=Phase.RUNNING)]

    assert verdict(targets, None, suspended=False).stalled is False


def test_an_invalid_spec_is_stalled() -> None:
    result = verdict([], None, suspended=False, invalid="spec.targets: bad")

    assert (result.stalled, result.reason, result.message) == (True, "InvalidSpec", "spec.targets: bad")


def test_transition_time_changes_only_when_the_status_does() -> None:
    running = verdict([TargetStatus(name="a", phase=Phase.RUNNING)], None, suspended=False)
    first = conditions(running, 1, [], "t1")

    again = _by_type(conditions(running, 1, first, "t2"))
    done = _by_type(conditions(verdict([TargetStatus(name="a", phase=Phase.SUCCEEDED)], None, False), 1, first, "t3"))

    assert again["Reconciling"].last_transition_time == "t1"
    assert done["Reconciling"].last_transition_time == "t3"
    assert done["Stalled"].last_transition_time == "t1"


def test_a_suspended_resource_is_neither_ready_nor_reconciling_and_says_suspended() -> None:
    targets = [TargetStatus(name="a", phase=Phase.PENDING, reason="Suspended"),
               TargetStatus(name="b", phase=Phase.SUCCEEDED)]

    got = _by_type(conditions(verdict(targets, None, suspended=True), 3, [], "now"))

    assert (got["Ready"].status, got["Ready"].reason) == ("False", "Suspended")
    assert (got["Reconciling"].status, got["Reconciling"].reason) == ("False", "Suspended")
    assert got["Stalled"].status == "False"
    assert got["Ready"].message.startswith("Suspended: spec.suspend is true; 1/2 targets unfinished")


def test_a_suspended_resource_whose_targets_all_finished_is_ready() -> None:
    result = verdict([TargetStatus(name="a", phase=Phase.SUCCEEDED)], None, suspended=True)

    assert (result.ready, result.reason) == (True, "Succeeded")
