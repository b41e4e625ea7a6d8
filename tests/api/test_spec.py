from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeopt.api.load import SpecError, load_resource, parse_resource

BASE: dict[str, Any] = {
    "apiVersion": "kubeopt.io/v1alpha1",
    "kind": "ModelOptimization",
    "metadata": {"name": "resnet"},
    "spec": {
        "model": {"uri": "s3://models/resnet.onnx", "format": "onnx",
                  "inputs": [{"name": "x", "shape": [-1, 3, 8, 8]}]},
        "targets": [{"name": "ort", "backend": "onnxruntime"}],
        "output": {"uri": "s3://out/resnet"},
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["spec"].update(changes)
    return document


def test_a_minimal_spec_gets_defaults_for_everything_else() -> None:
    resource = parse_resource(BASE)

    assert resource.spec.targets[0].precision.value == "fp32"
    assert resource.spec.benchmark.batch_sizes == [1, 8, 32]
    assert resource.spec.calibration is None


def test_int8_target_without_calibration_is_rejected() -> None:
    document = with_spec(targets=[{"name": "q", "backend": "onnxruntime", "precision": "int8"}])

    with pytest.raises(SpecError, match=r"spec.targets\[0\] \(q\): precision int8 needs spec.calibration"):
        parse_resource(document)


def test_fp8_on_a_backend_other_than_torch_compile_is_rejected() -> None:
    document = with_spec(targets=[{"name": "f", "backend": "onnxruntime", "precision": "fp8"}])

    with pytest.raises(SpecError, match=r"spec.targets\[0\] \(f\): precision fp8 is only for backend torch-compile"):
        parse_resource(document)


def test_options_block_of_another_backend_is_rejected() -> None:
    document = with_spec(targets=[{"name": "t", "backend": "onnxruntime", "torchCompile": {"mode": "default"}}])

    with pytest.raises(SpecError, match="options block torchCompile does not match backend onnxruntime"):
        parse_resource(document)


def test_repeated_target_names_are_rejected() -> None:
    document = with_spec(targets=[{"name": "a", "backend": "onnxruntime"}, {"name": "a", "backend": "onnxruntime"}])

    with pytest.raises(SpecError, match="names must be unique, repeated: a"):
        parse_resource(document)


def test_unknown_backend_names_the_field_and_the_allowed_values() -> None:
    document = with_spec(targets=[{"name": "t", "backend": "openvino"}])

    with pytest.raises(SpecError) as error:
        parse_resource(document)

    assert "spec.targets[0].backend" in str(error.value)
    assert "'tensorrt', 'tf-trt', 'onnxruntime' or 'torch-compile'" in str(error.value)


def test_unknown_fields_are_rejected_by_name() -> None:
    document = with_spec(benchmark={"batchSizes": [1], "warmups": 3})

    with pytest.raises(SpecError, match=r"spec.benchmark.warmups: Extra inputs are not permitted"):
        parse_resource(document)


def test_selection_batch_size_must_be_benchmarked() -> None:
    document = with_spec(benchmark={"batchSizes": [1, 8]}, selection={"batchSize": 64})

    with pytest.raises(SpecError, match=r"spec.selection.batchSize: 64 is not one of spec.benchmark.batchSizes"):
        parse_resource(document)


def test_zero_sized_dimension_is_rejected() -> None:
    document = with_spec(model={"uri": "m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 0]}]})

    with pytest.raises(SpecError, match="dimension 0 must be positive or -1"):
        parse_resource(document)


def test_yaml_that_is_not_yaml_names_the_source() -> None:
    with pytest.raises(SpecError, match=r"demo.yaml: not valid YAML"):
        load_resource("spec: [unclosed", "demo.yaml")


def test_wrong_kind_is_rejected() -> None:
    document = copy.deepcopy(BASE)
    document["kind"] = "Deployment"

    with pytest.raises(SpecError, match=r"apiVersion/kind must be kubeopt.io/v1alpha1 ModelOptimization"):
        parse_resource(document)


def test_triton_layout_refuses_torch_compile_targets() -> None:
    document = with_spec(targets=[{"name": "tc", "backend": "torch-compile"}],
                         output={"uri": "s3://out/x", "layout": "triton"})

    with pytest.raises(SpecError, match=r"output.layout triton serves onnxruntime and tensorrt targets"):
        parse_resource(document)
