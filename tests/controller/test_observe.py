from __future__ import annotations

from kubeopt.api.reasons import EXIT_CODES, Reason
from kubeopt.api.status import Phase
from kubeopt.controller.observe import job_finished, observe, read_summary

from .conftest import cond, job, pod, summary_text

UNSCHEDULABLE = cond("PodScheduled", "Unschedulable", status="False") | {
    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}


def test_a_complete_job_yields_the_workers_figures() -> None:
    seen = observe(job("j", conditions=[cond("Complete")], succeeded=1), [pod(exit_code=0, message=summary_text())],
                   "ort-fp32")

    assert seen.phase is Phase.SUCCEEDED
    assert seen.result is not None and seen.result.throughput == 5000.0
    assert seen.attempts == 1
    assert seen.completion_time == "2026-11-25T10:02:00Z"


def test_a_failed_job_takes_the_reason_from_the_termination_message() -> None:
    message = summary_text(reason=Reason.ACCURACY_BUDGET_EXCEEDED)

    seen = observe(job("j", conditions=[cond("Failed", "PodFailurePolicy")], failed=1),
                   [pod(exit_code=EXIT_CODES[Reason.ACCURACY_BUDGET_EXCEEDED], message=message)], "ort-fp32")

    assert seen.phase is Phase.FAILED
    assert seen.reason == "AccuracyBudgetExceeded"
    assert seen.message == "too much drift"


def test_an_out_of_memory_kill_is_reported_as_oomkilled() -> None:
    seen = observe(job("j", conditions=[cond("Failed", "BackoffLimitExceeded")], failed=2),
                   [pod(exit_code=137, reason="OOMKilled")], "ort-fp32")

    assert (seen.phase, seen.reason) == (Phase.FAILED, "OOMKilled")
    assert "spec.resources.memory" in (seen.message or "")


def test_an_oomkilled_attempt_is_reported_while_the_job_still_retries() -> None:
    seen = observe(job("j", active=1, failed=1), [pod(exit_code=137, reason="OOMKilled")], "ort-fp32")

    assert (seen.phase, seen.reason, seen.stuck) == (Phase.RUNNING, "OOMKilled", False)


def test_a_job_past_its_deadline_is_deadline_exceeded() -> None:
    seen = observe(job("j", conditions=[cond("Failed", "DeadlineExceeded")], failed=1), [pod()], "ort-fp32")

    assert (seen.phase, seen.reason) == (Phase.FAILED, "DeadlineExceeded")
    assert "activeDeadlineSeconds" in (seen.message or "")


def test_a_pod_the_scheduler_cannot_place_is_unschedulable_with_its_message() -> None:
    seen = observe(job("j", active=1), [pod(conditions=[UNSCHEDULABLE])], "ort-fp32")

    assert (seen.phase, seen.reason, seen.stuck) == (Phase.PENDING, "Unschedulable", True)
    assert seen.message == "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def test_an_exit_code_without_a_summary_maps_to_its_reason() -> None:
    seen = observe(job("j", conditions=[cond("Failed", "PodFailurePolicy")], failed=1),
                   [pod(exit_code=EXIT_CODES[Reason.MODEL_NOT_FOUND], message="Traceback ...")], "ort-fp32")

    assert seen.reason == "ModelNotFound"


def test_the_newest_pod_speaks_for_the_job() -> None:
    old = pod("a", exit_code=18, message=summary_text(reason=Reason.STORAGE_ERROR), created="2026-11-25T10:00:00Z")
    new = pod("b", exit_code=0, message=summary_text(throughput=7.0), created="2026-11-25T10:05:00Z")

    seen = observe(job("j", conditions=[cond("Complete")], succeeded=1, failed=1), [old, new], "ort-fp32")

    assert seen.result is not None and seen.result.throughput == 7.0
    assert seen.attempts == 2


def test_a_job_whose_pod_runs_is_running_and_a_suspended_one_pending() -> None:
    assert observe(job("j", active=1), [pod(phase="Running")], "t").phase is Phase.RUNNING
    suspended = observe(job("j", conditions=[cond("Suspended")]), [], "t")
    assert (suspended.phase, suspended.reason) == (Phase.PENDING, "Suspended")


def test_a_log_tail_is_not_mistaken_for_a_summary() -> None:
    assert read_summary("Traceback (most recent call last): ...") is None
    assert read_summary(None) is None


def test_a_job_is_finished_only_when_complete_or_failed() -> None:
    assert job_finished(job("j", conditions=[cond("Complete")]))
    assert job_finished(job("j", conditions=[cond("Failed")]))
    assert not job_finished(job("j", conditions=[cond("FailureTarget")]))
    assert not job_finished(job("j", conditions=[cond("Complete", status="False")]))


def test_a_job_whose_only_pod_waits_for_a_node_or_image_is_pending_although_active() -> None:
    waiting = pod(phase="Pending")
    waiting["status"]["containerStatuses"] = [{"name": "worker", "state": {"waiting": {"reason": "ContainerCreating"}}}]

    seen = observe(job("j", active=1), [waiting], "ort-fp32")

    assert (seen.phase, seen.reason, seen.stuck) == (Phase.PENDING, None, False)
    assert observe(job("j", active=1), [], "ort-fp32").phase is Phase.PENDING


def test_a_job_is_running_once_its_worker_container_runs() -> None:
    started = pod(phase="Pending")
    started["status"]["containerStatuses"] = [{"name": "worker", "state": {"running": {"startedAt": "t"}}}]

    assert observe(job("j", active=1), [started], "ort-fp32").phase is Phase.RUNNING


def test_the_first_failed_attempt_is_kept_beside_the_last_one() -> None:
    first = pod("a", exit_code=137, reason="OOMKilled", created="2026-11-25T10:00:00Z", finished="2026-11-25T10:01:00Z")
    last = pod("b", exit_code=EXIT_CODES[Reason.STORAGE_ERROR], message=summary_text(reason=Reason.STORAGE_ERROR),
               created="2026-11-25T10:02:00Z", finished="2026-11-25T10:03:00Z")

    seen = observe(job("j", conditions=[cond("Failed", "BackoffLimitExceeded")], failed=2), [last, first], "ort-fp32")

    assert (seen.phase, seen.reason, seen.attempts) == (Phase.FAILED, "StorageError", 2)
    assert seen.first_failure is not None
    assert (seen.first_failure.reason, seen.first_failure.time) == ("OOMKilled", "2026-11-25T10:01:00Z")
    assert "spec.resources.memory" in seen.first_failure.message


def test_a_retrying_job_reports_its_first_failure_and_a_clean_job_none() -> None:
    failed = pod("a", exit_code=EXIT_CODES[Reason.STORAGE_ERROR], message="Traceback: bucket unreachable",
                 created="2026-11-25T10:00:00Z")
    retry = pod("b", phase="Running", created="2026-11-25T10:02:00Z")

    seen = observe(job("j", active=1, failed=1), [failed, retry], "ort-fp32")

    assert seen.phase is Phase.RUNNING
    assert seen.first_failure is not None and seen.first_failure.reason == "StorageError"
    assert "bucket unreachable" in seen.first_failure.message
    ok = observe(job("j", conditions=[cond("Complete")], succeeded=1), [pod(exit_code=0, message=summary_text())], "t")
    assert ok.first_failure is None
