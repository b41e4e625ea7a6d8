from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeopt.api.backends import BackendName, CalibrationMethod
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


TORCH_EXPORT = {"uri": "s3://models/m.pt2", "format": "torch-export", "inputs": [{"name": "x", "shape": [-1, 4]}]}


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


def test_fp8_on_a_backend_other_than_torch_compile_is_rejected_naming_who_builds_it() -> None:
    document = with_spec(targets=[{"name": "f", "backend": "onnxruntime", "precision": "fp8"}])

    with pytest.raises(SpecError, match=r"spec.targets\[0\] \(f\).precision: backend onnxruntime does not build fp8 on "
                                        r"a GPU \(spec.resources.gpu: 1\); it builds fp32, fp16, int8 there; fp8 is "
                                        r"built by torch-compile"):
        parse_resource(document)


def test_a_precision_is_checked_on_the_device_kind_the_spec_asks_for() -> None:
    gpu = with_spec(model=TORCH_EXPORT, targets=[{"name": "f", "backend": "torch-compile", "precision": "fp8"}])
    cpu = with_spec(model=TORCH_EXPORT, targets=[{"name": "f", "backend": "torch-compile", "precision": "fp8"}],
                    resources={"gpu": 0})

    parse_resource(gpu)
    with pytest.raises(SpecError, match=r"\(f\).precision: backend torch-compile does not build fp8 on a CPU "
                                        r"\(spec.resources.gpu: 0\); it builds fp32, fp16, bf16, int8 there"):
        parse_resource(cpu)


def test_a_gpu_only_backend_on_a_cpu_is_rejected_saying_to_ask_for_a_gpu() -> None:
    document = with_spec(targets=[{"name": "trt", "backend": "tensorrt"}], resources={"gpu": 0})

    with pytest.raises(SpecError, match=r"spec.targets\[0\] \(trt\).backend: tensorrt needs a GPU \(spec.resources.gpu "
                                        r"is 0\): set resources.gpu >= 1"):
        parse_resource(document)


def test_torch_compile_of_torchscript_is_rejected_saying_to_use_torch_export() -> None:
    document = with_spec(model={**TORCH_EXPORT, "format": "torchscript"},
                         targets=[{"name": "tc", "backend": "torch-compile"}])

    with pytest.raises(SpecError, match=r"spec.model.format: backend torch-compile \(target tc\) does not accept "
                                        r"torchscript; it accepts torch-export\. .*use format torch-export"):
        parse_resource(document)


def test_tf_trt_of_a_keras_file_is_rejected_saying_to_export_a_savedmodel() -> None:
    document = with_spec(model={**TORCH_EXPORT, "format": "keras"}, targets=[{"name": "t", "backend": "tf-trt"}])

    with pytest.raises(SpecError, match=r"spec.model.format: backend tf-trt \(target t\) does not accept keras; it "
                                        r"accepts tensorflow-savedmodel\. .*model.export\(dir\)"):
        parse_resource(document)


def test_the_onnx_backends_accept_every_model_format() -> None:
    for fmt in ("onnx", "torchscript", "torch-export", "tensorflow-savedmodel", "keras"):
        targets = [{"name": "ort", "backend": "onnxruntime"}, {"name": "trt", "backend": "tensorrt"}]
        document = with_spec(model={**TORCH_EXPORT, "format": fmt}, targets=targets)

        assert parse_resource(document).spec.model.format.value == fmt


def test_a_calibration_method_the_backend_lacks_is_rejected_listing_what_it_offers() -> None:
    document = with_spec(model=TORCH_EXPORT, targets=[{"name": "q", "backend": "torch-compile", "precision": "int8"}],
                         calibration={"uri": "s3://d/c.npz", "method": "percentile"})

    with pytest.raises(SpecError, match=r"spec.calibration.method: backend torch-compile \(int8 target q\) does not "
                                        r"calibrate with percentile; it offers histogram, minmax"):
        parse_resource(document)


def test_a_calibration_method_only_matters_to_int8_targets() -> None:
    document = with_spec(model=TORCH_EXPORT, targets=[{"name": "c", "backend": "torch-compile", "precision": "fp16"}],
                         calibration={"uri": "s3://d/c.npz", "method": "percentile"})

    assert parse_resource(document).spec.calibration is not None


def test_an_unset_calibration_method_is_each_backends_default() -> None:
    document = with_spec(model=TORCH_EXPORT, calibration={"uri": "s3://d/c.npz"},
                         targets=[{"name": "q", "backend": "torch-compile", "precision": "int8"},
                                  {"name": "o", "backend": "onnxruntime", "precision": "int8"}])

    calibration = parse_resource(document).spec.calibration

    assert calibration is not None and calibration.method is None
    assert calibration.method_for(BackendName.TORCH_COMPILE) is CalibrationMethod.HISTOGRAM
    assert calibration.method_for(BackendName.ONNXRUNTIME) is CalibrationMethod.ENTROPY


def test_every_unsupported_choice_is_reported_at_once() -> None:
    document = with_spec(model={**TORCH_EXPORT, "format": "torchscript"}, resources={"gpu": 0},
                         targets=[{"name": "trt", "backend": "tensorrt"}, {"name": "tc", "backend": "torch-compile"}])

    with pytest.raises(SpecError) as error:
        parse_resource(document)

    assert "(trt).backend: tensorrt needs a GPU" in str(error.value)
    assert "backend torch-compile (target tc) does not accept torchscript" in str(error.value)


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
    document = with_spec(model=TORCH_EXPORT, targets=[{"name": "tc", "backend": "torch-compile"}],
                         output={"uri": "s3://out/x", "layout": "triton"})

    with pytest.raises(SpecError, match=r"output.layout triton serves onnxruntime and tensorrt targets"):
        parse_resource(document)
