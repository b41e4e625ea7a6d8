from __future__ import annotations

from kubeopt.api.status import Phase, TargetStatus
from kubeopt.controller.plan import expected_names, make_plan

from .conftest import cond, job, owner, parsed

THREE = [{"name": n, "backend": "onnxruntime"} for n in ("a", "b", "c")]


def test_at_most_parallelism_jobs_are_created_in_spec_order() -> None:
    o = owner(targets=THREE, parallelism=2)

    plan = make_plan(o, parsed(o), [], {})

    assert [t.name for t in plan.create] == ["a", "b"]


def test_the_next_target_starts_when_one_finishes() -> None:
    o = owner(targets=THREE, parallelism=2)
    names = expected_names(o, parsed(o))
    jobs = [job(names["a"], conditions=[cond("Complete")]), job(names["b"], active=1)]

    plan = make_plan(o, parsed(o), jobs, {})

    assert [t.name for t in plan.create] == ["c"]


def test_nothing_is_created_twice_while_the_watch_has_not_seen_it_yet() -> None:
    o = owner(targets=THREE, parallelism=3)
    names = expected_names(o, parsed(o))

    plan = make_plan(o, parsed(o), [], {}, in_flight={names["a"], names["b"]})

    assert [t.name for t in plan.create] == ["c"]


def test_a_target_with_a_recorded_result_is_not_started_again() -> None:
    o = owner(targets=THREE[:1])
    name = expected_names(o, parsed(o))["a"]

    plan = make_plan(o, parsed(o), [], {"a": TargetStatus(name="a", phase=Phase.SUCCEEDED, job_name=name)})

    assert plan.create == ()


def test_running_jobs_of_an_older_generation_are_deleted_and_finished_ones_kept() -> None:
    old = owner(generation=1, targets=THREE[:2])
    old_names = expected_names(old, parsed(old))
    new = owner(generation=2, targets=THREE[:2])
    jobs = [job(old_names["a"], active=1), job(old_names["b"], conditions=[cond("Complete")])]

    plan = make_plan(new, parsed(new), jobs, {})

    assert plan.delete == (old_names["a"],)
    assert [t.name for t in plan.create] == ["a"]


def test_suspend_creates_nothing_and_suspends_running_jobs() -> None:
    o = owner(targets=THREE, suspend=True)
    name = expected_names(o, parsed(o))["a"]

    plan = make_plan(o, parsed(o), [job(name, active=1)], {})

    assert plan.create == ()
    assert plan.suspend == ((name, True),)


def test_resuming_unsuspends_the_jobs_it_suspended() -> None:
    o = owner(targets=THREE[:1])
    name = expected_names(o, parsed(o))["a"]

    plan = make_plan(o, parsed(o), [job(name, suspend=True, conditions=[cond("Suspended")])], {})

    assert plan.suspend == ((name, False),)
