"""One description per backend: every fact about a backend that more than one place needs.

A backend's name (the one spelling a user writes in ``spec.targets[].backend``), its options
model, the precisions it builds on a CPU and on a GPU, the calibration methods it honours, the
model formats it accepts, the Triton platform that serves its artifact, the worker image that
carries it, the pyproject extra and the Python frameworks it imports are written here once.
Everything else is derived from ``BACKENDS`` or checked against it by a test:

* the spec check (``kubeopt.api.spec.cross_field_errors``) and the CRD's CEL rules
  (``kubeopt.api.backend_rules``) refuse what a backend does not support;
* ``Target``'s options fields and ``Images``' fields are named by ``option_field`` (snake_case
  in Python, camelCase on the wire), the operator's environment by ``image_env_suffix``, the
  chart's ``workerImages`` keys by ``image_key``;
* the worker's registry, Triton layout, framework import hints and library versions;
* the README's backend table (``backend_table``).

Adding a backend starts here: a ``BackendName`` member and its ``BackendDescription``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic.alias_generators import to_camel

from kubeopt.api.base import Model
from kubeopt.api.options import OnnxRuntimeOptions, TensorRTOptions, TfTrtOptions, TorchCompileOptions


class BackendName(StrEnum):
    TENSORRT = "tensorrt"
    TF_TRT = "tf-trt"
    ONNXRUNTIME = "onnxruntime"
    TORCH_COMPILE = "torch-compile"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    FP8 = "fp8"


class CalibrationMethod(StrEnum):
    """How activation ranges are chosen from calibration data (which tool runs it: the worker's
    ``kubeopt.worker.calibration_methods``)."""

    ENTROPY = "entropy"
    MINMAX = "minmax"
    PERCENTILE = "percentile"
    HISTOGRAM = "histogram"


class ModelFormat(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"
    TENSORFLOW_SAVEDMODEL = "tensorflow-savedmodel"
    KERAS = "keras"


class DeviceKind(StrEnum):
    """Where a target runs: ``resources.gpu: 0`` is a CPU, anything more a GPU."""

    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True)
class TritonModel:
    """How Triton serves a backend's artifact as it is: its platform and the file it loads."""

    platform: str
    model_file: str


@dataclass(frozen=True)
class BackendDescription:
    """Everything about one backend that the API, the operator, the chart and the worker share."""

    name: BackendName
    title: str  # how the documentation names it
    options: type[Model]  # the model of spec.targets[].<option_field>
    cpu: frozenset[Precision]  # precisions built on a CPU (empty: needs a GPU)
    gpu: frozenset[Precision]  # precisions built on a GPU
    calibration_methods: tuple[CalibrationMethod, ...]  # for int8; the first is the default
    formats: frozenset[ModelFormat]  # spec.model.format values it accepts
    format_hint: str  # what to do with a format it refuses
    triton: TritonModel | None  # None: output.layout triton cannot serve it
    image: str  # the worker image that carries it (images/<image>/)
    image_has: str  # what that image brings that others lack
    extra: str  # the pyproject extra with its Python dependencies
    frameworks: tuple[str, ...]  # top-level modules it imports (lazily), the main one first

    @property
    def option_field(self) -> str:
        return option_field(self.name)

    @property
    def image_key(self) -> str:
        return image_key(self.name)

    @property
    def default_method(self) -> CalibrationMethod:
        return self.calibration_methods[0]

    def precisions(self, device: DeviceKind) -> frozenset[Precision]:
        return self.gpu if device is DeviceKind.GPU else self.cpu

    def supported_text(self, device: DeviceKind) -> str:
        """``fp32, fp16, int8`` in Precision order, or a sentence when there are none."""
        listed = names(self.precisions(device), Precision)
        return listed or f"no precision on a {device.value.upper()}"


def option_field(backend: BackendName) -> str:
    """The one mapping of a backend's name to a Python field: ``tf-trt`` -> ``tf_trt``.

    ``Target``'s options block and ``Images``' field carry this name; on the wire it is
    camelCase (``image_key``: ``tfTrt``), in the environment upper case (``TF_TRT``).
    """
    return backend.value.replace("-", "_")


def image_key(backend: BackendName) -> str:
    """The wire name of the backend's options block and image: ``tfTrt``, as spec and chart write it."""
    return to_camel(option_field(backend))


def image_env_suffix(backend: BackendName) -> str:
    """``KUBEOPT_WORKER_IMAGE_<suffix>``: ``TF_TRT`` (the chart writes ``image_key | snakecase | upper``)."""
    return option_field(backend).upper()


def names(values: Iterable[StrEnum], order: Iterable[StrEnum]) -> str:
    """The values' spellings joined by commas, in the order of ``order`` (an enum)."""
    chosen = set(values)
    return ", ".join(v.value for v in order if v in chosen)


_ALL_FORMATS = frozenset(ModelFormat)

BACKENDS: dict[BackendName, BackendDescription] = {
    description.name: description for description in (
        BackendDescription(
            name=BackendName.TENSORRT, title="TensorRT", options=TensorRTOptions,
            cpu=frozenset(), gpu=frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
            calibration_methods=(CalibrationMethod.ENTROPY, CalibrationMethod.MINMAX, CalibrationMethod.PERCENTILE),
            formats=_ALL_FORMATS, format_hint="",
            triton=TritonModel("tensorrt_plan", "model.plan"),
            image="worker-tensorrt", image_has="NVIDIA TensorRT 10+", extra="tensorrt",
            frameworks=("tensorrt", "modelopt"),
        ),
        BackendDescription(
            name=BackendName.TF_TRT, title="TF-TRT", options=TfTrtOptions,
            cpu=frozenset(), gpu=frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
            # TF-TRT calibrates with TensorRT's IInt8EntropyCalibrator2 and offers no other.
            calibration_methods=(CalibrationMethod.ENTROPY,),
            formats=frozenset({ModelFormat.TENSORFLOW_SAVEDMODEL}),
            format_hint="TrtGraphConverterV2 reads a SavedModel: save a Keras model with model.export(dir) and use "
            "format tensorflow-savedmodel, or use backend tensorrt or onnxruntime",
            triton=None,
            image="worker-tftrt", image_has="TensorFlow <= 2.17 built with TensorRT", extra="tensorflow",
            frameworks=("tensorflow",),
        ),
        BackendDescription(
            name=BackendName.ONNXRUNTIME, title="ONNX Runtime", options=OnnxRuntimeOptions,
            cpu=frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
            gpu=frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
            calibration_methods=(CalibrationMethod.ENTROPY, CalibrationMethod.MINMAX, CalibrationMethod.PERCENTILE),
            formats=_ALL_FORMATS, format_hint="",
            triton=TritonModel("onnxruntime_onnx", "model.onnx"),
            image="worker-onnxruntime", image_has="ONNX Runtime", extra="onnxruntime",
            frameworks=("onnxruntime", "onnx"),
        ),
        BackendDescription(
            name=BackendName.TORCH_COMPILE, title="torch.compile", options=TorchCompileOptions,
            cpu=frozenset({Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8}),
            gpu=frozenset(Precision),
            # PT2E's x86 quantizer observes with MinMaxObserver or HistogramObserver (on a GPU, int8
            # scales activations at run time and reads no calibration data).
            calibration_methods=(CalibrationMethod.HISTOGRAM, CalibrationMethod.MINMAX),
            formats=frozenset({ModelFormat.TORCH_EXPORT}),
            format_hint="torch.compile traces Python, not TorchScript (it would compile nothing and run the "
            "scripted model as it is): save the model with torch.export.save and use format torch-export, or use "
            "backend onnxruntime or tensorrt",
            triton=None,
            image="worker-torch", image_has="PyTorch with torchao", extra="torch", frameworks=("torch", "torchao"),
        ),
    )
}


def describe(backend: BackendName) -> BackendDescription:
    return BACKENDS[backend]


def triton_backends() -> frozenset[BackendName]:
    """Backends whose artifact Triton serves as it is (``output.layout: triton``)."""
    return frozenset(name for name, d in BACKENDS.items() if d.triton is not None)


def backend_table() -> str:
    """The README's backend table (Markdown), one row per description."""
    rows = ["| backend | precisions on a CPU | precisions on a GPU | calibration methods (default first) | "
            "model formats | Triton | image | extra |",
            "|---|---|---|---|---|---|---|---|"]
    for d in BACKENDS.values():
        formats = "all" if d.formats == _ALL_FORMATS else names(d.formats, ModelFormat)
        rows.append(f"| `{d.name.value}` ({d.title}) | {names(d.cpu, Precision) or '-'} | "
                    f"{names(d.gpu, Precision) or '-'} | {', '.join(m.value for m in d.calibration_methods)} | "
                    f"{formats} | {d.triton.platform if d.triton else '-'} | {d.image} | `{d.extra}` |")
    return "\n".join(rows) + "\n"


def _check_complete() -> None:
    missing = set(BackendName) - set(BACKENDS)
    if missing:  # a programming error: a name without its description
        raise RuntimeError(f"backends without a description: {', '.join(sorted(missing))}")


_check_complete()
