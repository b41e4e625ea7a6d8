from __future__ import annotations

from kubeopt.api.status import Phase, TargetStatus
from kubeopt.controller.plan import Plan, expected_names, make_plan

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


def test_running_jobs_of_older_work_are_deleted_and_finished_ones_kept() -> None:
    old = owner(generation=1, targets=THREE[:2])
    old_names = expected_names(old, parsed(old))
    new = owner(generation=2, targets=THREE[:2], benchmark={"iterations": 20})
    jobs = [job(old_names["a"], active=1), job(old_names["b"], conditions=[cond("Complete")])]

    plan = make_plan(new, parsed(new), jobs, {})

    assert plan.delete == (old_names["a"],)
    assert [t.name for t in plan.create] == ["a"]


def test_suspend_parallelism_and_ttl_bump_the_generation_but_keep_every_job_name() -> None:
    first = owner(generation=1, targets=THREE)
    later = owner(generation=4, targets=THREE, suspend=True, parallelism=3, ttlSecondsAfterFinished=60)

    assert expected_names(later, parsed(later)) == expected_names(first, parsed(first))


def test_a_new_generation_that_keeps_the_work_keeps_running_jobs_and_recorded_results() -> None:
    first = owner(generation=1, targets=THREE[:2])
    names = expected_names(first, parsed(first))
    later = owner(generation=2, targets=THREE[:2], parallelism=2)
    done = {"a": TargetStatus(name="a", phase=Phase.SUCCEEDED, job_name=names["a"])}

    plan = make_plan(later, parsed(later), [job(names["b"], active=1)], done)

    assert plan == Plan()


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


def test_suspend_suspends_every_running_job_and_deletes_none() -> None:
    o = owner(targets=THREE, suspend=True, parallelism=3)
    names = expected_names(o, parsed(o))
    jobs = [job(names["a"], active=1), job(names["b"], active=1), job(names["c"], conditions=[cond("Complete")])]

    plan = make_plan(o, parsed(o), jobs, {})

    assert plan == Plan(suspend=((names["a"], True), (names["b"], True)))


def test_suspend_keeps_already_suspended_jobs_as_they_are() -> None:
    o = owner(targets=THREE[:1], suspend=True)
    name = expected_names(o, parsed(o))["a"]

    assert make_plan(o, parsed(o), [job(name, suspend=True, conditions=[cond("Suspended")])], {}) == Plan()


def test_resuming_with_a_lower_parallelism_resumes_only_that_many_in_spec_order() -> None:
    o = owner(targets=THREE, parallelism=1)
    names = expected_names(o, parsed(o))
    jobs = [job(names[n], suspend=True, conditions=[cond("Suspended")]) for n in ("a", "b")]

    plan = make_plan(o, parsed(o), jobs, {})

    assert plan == Plan(suspend=((names["a"], False),))


def test_lowering_parallelism_suspends_the_running_jobs_beyond_it_and_keeps_them() -> None:
    o = owner(targets=THREE, parallelism=1)
    names = expected_names(o, parsed(o))
    jobs = [job(names[n], active=1) for n in ("a", "b", "c")]

    plan = make_plan(o, parsed(o), jobs, {})

    assert plan == Plan(suspend=((names["b"], True), (names["c"], True)))


def test_raising_parallelism_resumes_suspended_jobs_before_starting_new_ones() -> None:
    o = owner(targets=THREE, parallelism=3)
    names = expected_names(o, parsed(o))
    jobs = [job(names["a"], active=1), job(names["b"], suspend=True)]

    plan = make_plan(o, parsed(o), jobs, {})

    assert plan.suspend == ((names["b"], False),)
    assert [t.name for t in plan.create] == ["c"]
    assert plan.delete == ()


def test_a_jobs_ttl_follows_the_spec_without_replacing_it() -> None:
    o = owner(targets=THREE[:2], ttlSecondsAfterFinished=600, parallelism=2)
    names = expected_names(o, parsed(o))
    jobs = [job(names["a"], conditions=[cond("Complete")]), job(names["b"], active=1)]

    plan = make_plan(o, parsed(o), jobs, {})

    assert plan == Plan(ttl=((names["a"], 600), (names["b"], 600)))
