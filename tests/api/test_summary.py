from __future__ import annotations

from kubeopt.api.reasons import EXIT_CODES, Reason, reason_for_exit_code
from kubeopt.api.summary import MAX_BYTES, ArtifactRef, Summary, TargetSummary, decode, encode


def target(index: int) -> TargetSummary:
    return TargetSummary(
        name=f"target-with-a-long-name-{index:02d}", phase="Succeeded", message="x" * 300, batch=128,
        throughput=12345.6, baseline_throughput=3243.1, p50_ms=10.5, p99_ms=12.25, speedup=3.8,
        throughput_by_batch={str(b): 1000.0 * b for b in (1, 8, 32, 64, 128, 256)},
        artifact=ArtifactRef(uri=f"s3://bucket/prefix/target-{index}", sha256="f" * 64, size=123456789),
    )


def test_summary_round_trips_through_json() -> None:
    summary = Summary(status="Succeeded", reason=Reason.SUCCEEDED, targets=[target(1)], best=target(1).name)

    assert decode(encode(summary)) == summary


def test_summary_of_many_targets_fits_the_4_kib_termination_message() -> None:
    summary = Summary(status="Succeeded", reason=Reason.SUCCEEDED, message="m" * 2000,
                      targets=[target(i) for i in range(32)])

    text = encode(summary)

    assert len(text.encode()) <= MAX_BYTES
    decoded = decode(text)
    assert decoded.targets, "at least the first targets survive"
    assert decoded.targets[0].artifact is not None


def test_small_summary_keeps_per_batch_figures() -> None:
    text = encode(Summary(status="Succeeded", reason=Reason.SUCCEEDED, targets=[target(1)]))

    assert decode(text).targets[0].throughput_by_batch is not None


def test_every_reason_a_worker_exits_with_maps_back_from_its_code() -> None:
    for reason, code in EXIT_CODES.items():
        assert reason_for_exit_code(code) is reason
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
