from __future__ import annotations

import re
from typing import Any

import pytest

from kubeopt.controller.names import job_labels, job_name, label_value, work

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


SPEC = {"model": {"uri": "s3://m/a.onnx"}, "targets": [{"name": "ort", "backend": "onnxruntime"},
                                                     {"name": "trt", "backend": "tensorrt"}],
        "output": {"uri": "s3://out"}, "parallelism": 2, "suspend": False, "ttlSecondsAfterFinished": 60}


def test_job_name_is_resource_target_and_hash() -> None:
    name = job_name("digits", "ort-fp32", work(SPEC, "ort"))

    assert re.fullmatch(r"digits-ort-fp32-[0-9a-f]{8}", name)


def test_work_is_the_spec_less_how_jobs_run_with_only_its_target() -> None:
    assert work(SPEC, "trt") == {"model": {"uri": "s3://m/a.onnx"}, "output": {"uri": "s3://out"},
                                 "targets": [{"name": "trt", "backend": "tensorrt"}]}


def test_a_target_not_in_the_spec_has_no_work() -> None:
    with pytest.raises(KeyError):
        work(SPEC, "tf")


def test_job_name_is_the_same_for_the_same_work() -> None:
    assert job_name("r", "ort", work(SPEC, "ort")) == job_name("r", "ort", work(dict(SPEC), "ort"))


def test_suspend_parallelism_ttl_and_other_targets_keep_the_name() -> None:
    changed = {**SPEC, "suspend": True, "parallelism": 5, "ttlSecondsAfterFinished": None,
               "targets": [{"name": "tf", "backend": "tf-trt"}, *SPEC["targets"][:1]]}

    assert job_name("r", "ort", work(changed, "ort")) == job_name("r", "ort", work(SPEC, "ort"))


@pytest.mark.parametrize("change", [
    {"model": {"uri": "s3://m/b.onnx"}}, {"output": {"uri": "s3://elsewhere"}}, {"benchmark": {"iterations": 9}},
    {"resources": {"gpu": 0}}, {"images": {"default": "w:2"}}, {"backoffLimit": 3}, {"activeDeadlineSeconds": 99},
    {"storage": {"endpoint": "http://s3"}}, {"calibration": {"uri": "s3://c"}}, {"validation": {"samples": 5}},
    {"selection": {"objective": "latency"}}, {"preprocessing": {"grayscale": True}},
    {"targets": [{"name": "ort", "backend": "onnxruntime", "precision": "fp16"}]},
], ids=lambda change: next(iter(change)))
def test_a_change_of_the_work_changes_the_name(change: dict[str, Any]) -> None:
    assert job_name("r", "ort", work({**SPEC, **change}, "ort")) != job_name("r", "ort", work(SPEC, "ort"))


def test_long_names_are_cut_to_a_dns_label_of_at_most_63_characters() -> None:
    name = job_name("a" * 200, "t" * 30, {})

    assert len(name) <= 63
    assert DNS_LABEL.match(name)


def test_a_cut_never_leaves_a_dash_before_the_hash() -> None:
    name = job_name("x" * 53 + "-", "y", {})

    assert "--" not in name
    assert DNS_LABEL.match(name)


def test_long_label_values_keep_a_prefix_and_gain_a_hash() -> None:
    value = label_value("n" * 100)

    assert len(value) <= 63
    assert value.startswith("n" * 40)
    assert label_value("short") == "short"


def test_labels_name_the_manager_resource_its_uid_target_and_generation() -> None:
    assert job_labels("digits", "u1", "ort", 4) == {
        "app.kubernetes.io/managed-by": "kubeopt", "kubeopt.io/optimization": "digits",
        "kubeopt.io/optimization-uid": "u1", "kubeopt.io/target": "ort", "kubeopt.io/generation": "4",
    }


def test_a_cut_never_leaves_a_dot_before_the_hash() -> None:
    name = job_name("x" * 53 + ".y", "t", {})

    assert ".-" not in name
    assert DNS_LABEL.match(name.replace(".", "-"))


def test_two_long_names_that_share_a_prefix_get_different_label_values() -> None:
    first, second = label_value("a" * 250 + "one"), label_value("a" * 250 + "two")

    assert first != second
    assert max(len(first), len(second)) <= 63
