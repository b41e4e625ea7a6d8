from __future__ import annotations

from kubeopt.api.spec import Objective, Selection
from kubeopt.api.status import Phase, TargetMetrics, TargetStatus
from kubeopt.controller.observe import observe
from kubeopt.controller.status import choose_best, figure, overall_phase, target_status

from .conftest import cond, job, pod, summary_text


def _done(name: str, throughput: str, p50: str, speedup: str = "1.0") -> TargetStatus:
    return TargetStatus(name=name, phase=Phase.SUCCEEDED, job_name=f"r-{name}",
                        metrics=TargetMetrics(batch_size=32, throughput=throughput, latency_p50_ms=p50,
                                              speedup=speedup))


def test_figures_are_stored_as_strings() -> None:
    assert figure(1234.5) == "1234.5"
    assert figure(None) is None


def test_status_of_a_finished_target_holds_metrics_and_artifact_as_strings() -> None:
    seen = observe(job("r-ort", conditions=[cond("Complete")], succeeded=1),
                   [pod(exit_code=0, message=summary_text(throughput=5000.0, p50=0.4, speedup=1.5))], "ort-fp32")

    status = target_status("ort-fp32", "r-ort", seen, None)

    assert status.phase is Phase.SUCCEEDED
    assert status.metrics is not None
    figures = (status.metrics.throughput, status.metrics.latency_p50_ms, status.metrics.speedup)
    assert figures == ("5000.0", "0.4", "1.5")
    assert status.metrics.batch_size == 32
    assert status.artifact is not None and status.artifact.uri == "s3://artifacts/digits/ort-fp32"


def test_a_recorded_result_survives_its_job_being_removed() -> None:
    recorded = _done("ort", "10.0", "1.0")

    assert target_status("ort", "r-ort", None, recorded) is recorded


def test_a_result_of_another_job_name_is_not_carried_over() -> None:
    recorded = _done("ort", "10.0", "1.0")

    status = target_status("ort", "r-ort-generation-2", None, recorded)

    assert (status.phase, status.metrics) == (Phase.PENDING, None)


def test_best_for_throughput_is_the_highest_throughput() -> None:
    targets = [_done("a", "100.0", "1.0"), _done("b", "300.0", "5.0", speedup="3.0"), _done("c", "200.0", "0.5")]

    best = choose_best(targets, Selection(objective=Objective.THROUGHPUT))

    assert best is not None and (best.target, best.speedup) == ("b", "3.0")


def test_best_for_latency_is_the_lowest_median_latency() -> None:
    targets = [_done("a", "100.0", "1.0"), _done("b", "300.0", "5.0"), _done("c", "200.0", "0.5")]

    best = choose_best(targets, Selection(objective=Objective.LATENCY))

    assert best is not None and best.target == "c"


def test_failed_targets_are_never_best() -> None:
    failed = TargetStatus(name="x", phase=Phase.FAILED, metrics=TargetMetrics(throughput="9999.0"))

    assert choose_best([failed], Selection()) is None


def test_phase_summarizes_the_targets() -> None:
    running = TargetStatus(name="a", phase=Phase.RUNNING)
    pending = TargetStatus(name="b", phase=Phase.PENDING)
    failed = TargetStatus(name="c", phase=Phase.FAILED)

    assert overall_phase([running, pending], suspended=False) is Phase.RUNNING
    assert overall_phase([pending], suspended=False) is Phase.PENDING
    assert overall_phase([pending], suspended=True) is Phase.SUSPENDED
    assert overall_phase([_done("a", "1.0", "1.0"), failed], suspended=False) is Phase.SUCCEEDED
    assert overall_phase([failed], suspended=False) is Phase.FAILED


def test_the_first_failure_is_written_with_reason_message_and_time() -> None:
    failed = pod("a", exit_code=137, reason="OOMKilled", finished="2026-11-25T10:01:00Z")
    seen = observe(job("r-ort", active=1, failed=1), [failed, pod("b", phase="Running")], "ort-fp32")

    wire = target_status("ort-fp32", "r-ort", seen, None).model_dump(mode="json", by_alias=True, exclude_none=True)

    assert wire["phase"] == "Running" and wire["attempts"] == 2
    assert wire["firstFailure"]["reason"] == "OOMKilled"
    assert wire["firstFailure"]["time"] == "2026-11-25T10:01:00Z"


def test_a_first_failure_recorded_for_the_same_job_stays_when_its_pod_is_gone() -> None:
    failed = pod("a", exit_code=137, reason="OOMKilled", finished="2026-11-25T10:01:00Z")
    before = target_status("ort-fp32", "r-ort", observe(job("r-ort", active=1, failed=1), [failed], "ort-fp32"), None)
    later = observe(job("r-ort", active=1, failed=1), [pod("b", phase="Running")], "ort-fp32")

    kept = target_status("ort-fp32", "r-ort", later, before)
    other_job = target_status("ort-fp32", "r-ort2", observe(job("r-ort2", active=1), [], "ort-fp32"), before)

    assert kept.first_failure is not None and kept.first_failure.reason == "OOMKilled"
    assert other_job.first_failure is None
