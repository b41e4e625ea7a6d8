from __future__ import annotations

import re

from kubeopt.controller.names import job_labels, job_name, label_value

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_job_name_is_resource_target_and_hash() -> None:
    name = job_name("digits", "ort-fp32", 1, {"name": "ort-fp32"})

    assert re.fullmatch(r"digits-ort-fp32-[0-9a-f]{8}", name)


def test_job_name_is_the_same_for_the_same_generation_and_target_spec() -> None:
    target = {"name": "ort", "backend": "onnxruntime"}

    assert job_name("r", "ort", 3, target) == job_name("r", "ort", 3, dict(target))


def test_job_name_changes_with_the_generation_or_the_target_spec() -> None:
    target = {"name": "ort", "backend": "onnxruntime"}

    names = {job_name("r", "ort", 1, target), job_name("r", "ort", 2, target),
             job_name("r", "ort", 1, {**target, "precision": "fp16"})}

    assert len(names) == 3


def test_long_names_are_cut_to_a_dns_label_of_at_most_63_characters() -> None:
    name = job_name("a" * 200, "t" * 30, 1, {})

    assert len(name) <= 63
    assert DNS_LABEL.match(name)


def test_a_cut_never_leaves_a_dash_before_the_hash() -> None:
    name = job_name("x" * 53 + "-", "y", 1, {})

    assert "--" not in name
    assert DNS_LABEL.match(name)


def test_long_label_values_keep_a_prefix_and_gain_a_hash() -> None:
    value = label_value("n" * 100)

    assert len(value) <= 63
    assert value.startswith("n" * 40)
    assert label_value("short") == "short"


def test_labels_name_the_manager_resource_target_and_generation() -> None:
    assert job_labels("digits", "ort", 4) == {
        "app.kubernetes.io/managed-by": "kubeopt", "kubeopt.io/optimization": "digits",
        "kubeopt.io/target": "ort", "kubeopt.io/generation": "4",
    }
