"""The ModelOptimization v1alpha1 spec as pydantic models.

These models are the single source of the resource's shape: the CRD's OpenAPI schema is
generated from them (``kubeopt.api.crd``), the worker parses the same YAML a user applies,
and the controller reads the same fields. Every field carries a description so that
``kubectl explain`` helps. Cross-field rules live in ``ModelOptimizationSpec``'s validator
and are mirrored as CEL rules in the CRD so the API server rejects the same specs. What a
backend supports (precisions per device kind, formats, calibration methods, Triton) is read
from its description in ``kubeopt.api.backends``, never spelled out here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator

from kubeopt.api.backends import (
    BACKENDS,
    BackendDescription,
    BackendName,
    CalibrationMethod,
    DeviceKind,
    ModelFormat,
    Precision,
    image_key,
    names,
    option_field,
    triton_backends,
)
from kubeopt.api.base import Model
from kubeopt.api.options import OnnxRuntimeOptions, TensorRTOptions, TfTrtOptions, TorchCompileOptions

GROUP = "kubeopt.io"
VERSION = "v1alpha1"
KIND = "ModelOptimization"
PLURAL = "modeloptimizations"
SINGULAR = "modeloptimization"
SHORT_NAMES = ["mopt"]
TARGET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Data locations a Job can read and write: s3://, file:// (inside the worker's image or a local
# run) or a path. Any other scheme (gs://, https://) fails at admission (the CRD's rule) and in
# the model; pvc:// is refused at admission too: Jobs mount no claims.
URI_SCHEMES = ("s3", "file", "pvc")
URI_RULES: list[JsonValue] = [
    {"rule": "!self.contains('://') || self.startsWith('s3://') || self.startsWith('file://') || "
             "self.startsWith('pvc://')",
     "message": "unsupported URI scheme: use s3://bucket/key, file:///path or a path (gs://, https:// and others "
                "are not read by kubeopt)"},
    {"rule": "!self.startsWith('pvc://')",
     "message": "pvc:// is not mounted by kubeopt Jobs: copy the data to object storage (s3://) and name that"},
]
# A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity), as the CRD's CEL
# isQuantity() accepts it: 4, 500m, 1.5, 16Gi, 16G, 1e3. Not "16GB".
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
QUANTITY_RULES: list[JsonValue] = [{
    "rule": "type(self) == int ? self > 0 : (isQuantity(self) && quantity(self).isGreaterThan(quantity('0')))",
    "message": "must be a positive Kubernetes quantity, e.g. 4, 500m (CPU) or 16Gi, 16G (memory); 16GB is not one",
}]


def _uri(value: str) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme and scheme not in URI_SCHEMES:
        raise ValueError(f"{value}: unsupported URI scheme {scheme}://; use s3://bucket/key, file:///path or a path")
    return value


def _quantity(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a Kubernetes quantity, not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value} must be positive")
        return str(value)
    if isinstance(value, str):
        match = QUANTITY.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a Kubernetes quantity: use e.g. 4, 500m, 16Gi or 16G")
        if float(match.group(1)) == 0:
            raise ValueError(f"{value!r} must be positive")
    return value


Uri = Annotated[str, BeforeValidator(_uri)]
Quantity = Annotated[str, BeforeValidator(_quantity)]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    GENERIC = "generic"


class Objective(StrEnum):
    THROUGHPUT = "throughput"
    LATENCY = "latency"


class OutputLayout(StrEnum):
    PLAIN = "plain"
    TRITON = "triton"


class TensorSpec(Model):
    """One model input."""

    name: str = Field(min_length=1, description="Input tensor name as the model declares it.")
    shape: list[int] = Field(
        min_length=1,
        description="Shape including the batch dimension; -1 marks a dynamic dimension "
        "(the batch dimension is usually -1).",
    )
    dtype: str = Field(
        default="float32",
        pattern=r"^(float32|float16|bfloat16|int64|int32|int8|uint8|bool)$",
        description="Element type: float32, float16, bfloat16, int64, int32, int8, uint8 or bool.",
    )

    @model_validator(mode="after")
    def _dims_are_positive_or_dynamic(self) -> TensorSpec:
        for dim in self.shape:
            if dim == 0 or dim < -1:
                raise ValueError(f"shape of input {self.name!r}: dimension {dim} must be positive or -1")
        return self


def _format_doc() -> str:
    limited = "; ".join(f"{d.name.value} takes {names(d.formats, ModelFormat)} only"
                        for d in BACKENDS.values() if d.formats != frozenset(ModelFormat))
    return f"Serialization format of the model: {', '.join(ModelFormat)} ({limited}; the others take every format)."


class ModelSource(Model):
    """Where the trained model is and how to read it."""

    uri: Uri = Field(min_length=1, description="Model location: s3://bucket/key, file:///path or a path.",
                     json_schema_extra={"x-kubernetes-validations": URI_RULES})
    format: ModelFormat = Field(description=_format_doc())
    inputs: list[TensorSpec] = Field(min_length=1, description="The model's inputs, in call order.")
    task: Task = Field(
        default=Task.GENERIC,
        description="classification adds top-1 agreement (and accuracy with labels) to validation.",
    )


class Preprocessing(Model):
    """How a folder of images becomes input tensors (calibration and validation data)."""

    resize: list[int] | None = Field(default=None, min_length=2, max_length=2, description="[height, width].")
    grayscale: bool = Field(default=False, description="Convert images to one channel.")
    scale: float = Field(default=1.0 / 255.0, description="Multiply pixel values by this first.")
    mean: list[float] = Field(default_factory=lambda: [0.0], description="Per-channel mean subtracted.")
    std: list[float] = Field(default_factory=lambda: [1.0], description="Per-channel std divided by.")


def _precision_doc() -> str:
    def built_on(d: BackendDescription, device: DeviceKind) -> str:
        return names(d.precisions(device), Precision) or "nothing"

    built = "; ".join(f"{d.name.value}: {built_on(d, DeviceKind.CPU)} on a CPU, {built_on(d, DeviceKind.GPU)} on a GPU"
                      for d in BACKENDS.values())
    return (f"{', '.join(Precision)}. What each backend builds ({built}). int8 is calibrated on a CPU and for "
            "TensorRT/ONNX Runtime; torch-compile int8 on a GPU runs linear and 1x1 convolution GEMMs in int8 with "
            "run-time activation scales and the rest in fp16; fp8 (torch-compile on GPUs with compute capability "
            "8.9+) runs float8 e4m3 linear layers and the rest in bf16.")


def _options_doc(backend: BackendName) -> str:
    return f"Options when backend is {backend.value}."


class Target(Model):
    """One backend x precision combination to build, validate and benchmark."""

    # One options field per backend, named option_field(backend); a test keeps them in step with BACKENDS.

    name: str = Field(
        min_length=1, max_length=30, pattern=TARGET_NAME_PATTERN,
        description="Unique name, a DNS label of at most 30 characters.",
    )
    backend: BackendName = Field(description=f"{', '.join(BackendName)}.")
    precision: Precision = Field(default=Precision.FP32, description=_precision_doc())
    tensorrt: TensorRTOptions | None = Field(default=None, description=_options_doc(BackendName.TENSORRT))
    tf_trt: TfTrtOptions | None = Field(default=None, description=_options_doc(BackendName.TF_TRT))
    onnxruntime: OnnxRuntimeOptions | None = Field(default=None, description=_options_doc(BackendName.ONNXRUNTIME))
    torch_compile: TorchCompileOptions | None = Field(default=None, description=_options_doc(BackendName.TORCH_COMPILE))


class Calibration(Model):
    """INT8 calibration data and method."""

    uri: Uri = Field(min_length=1, description="An .npz keyed by input name, or a folder of images.",
                     json_schema_extra={"x-kubernetes-validations": URI_RULES})
    samples: int = Field(default=512, ge=1, description="How many samples to calibrate on.")
    batch_size: int = Field(default=32, ge=1, description="Calibration batch size.")
    method: CalibrationMethod | None = Field(
        default=None,
        description=f"{', '.join(CalibrationMethod)}. Unset: each backend's default ("
        + "; ".join(f"{d.name.value}: {d.default_method.value}" for d in BACKENDS.values())
        + "). A backend that does not offer the method refuses the spec: "
        + "; ".join(f"{d.name.value} offers {', '.join(d.calibration_methods)}" for d in BACKENDS.values()) + ".",
    )
    percentile: float = Field(default=99.999, gt=90.0, le=100.0, description="Percentile for method percentile.")

    def method_for(self, backend: BackendName) -> CalibrationMethod:
        """The method a backend calibrates with: the spec's, else the backend's default."""
        return self.method or BACKENDS[backend].default_method


class AccuracyBudget(Model):
    """How far a target may drift from the FP32 baseline and still be chosen."""

    max_top1_drop: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Classification: largest allowed drop in top-1 accuracy (with labels) or in top-1 "
        "agreement with the baseline (without), as a fraction.",
    )
    max_relative_error: float = Field(
        default=0.05, ge=0.0,
        description="Largest allowed ||target - baseline|| / ||baseline|| over the validation outputs.",
    )


class Validation(Model):
    """Data to compare each target with the baseline on."""

    uri: Uri | None = Field(
        default=None,
        description="An .npz keyed by input name (optional 'labels' array), or a folder of images. "
        "Unset: the calibration data, else random inputs.",
        json_schema_extra={"x-kubernetes-validations": URI_RULES},
    )
    samples: int = Field(default=1000, ge=1, description="At most this many samples.")
    budget: AccuracyBudget = Field(default_factory=AccuracyBudget, description="The accuracy budget.")


class Benchmark(Model):
    """Side-by-side timing of baseline and target."""

    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 8, 32], min_length=1, description="Batch sizes to time, each at least 1."
    )
    warmup: int = Field(default=10, ge=0, description="Untimed iterations first.")
    iterations: int = Field(default=50, ge=1, description="Timed iterations per batch size.")


class Selection(Model):
    """How the best target is chosen among those inside the accuracy budget."""

    objective: Objective = Field(default=Objective.THROUGHPUT, description="throughput or latency.")
    batch_size: int | None = Field(
        default=None, ge=1,
        description="Batch size the objective is read at (default: largest for throughput, smallest for "
        "latency). Must be one of benchmark.batchSizes.",
    )


class Output(Model):
    """Where optimized artifacts and reports are published."""

    uri: Uri = Field(min_length=1, description="s3://bucket/prefix, file:///path or a path.",
                     json_schema_extra={"x-kubernetes-validations": URI_RULES})
    layout: OutputLayout = Field(default=OutputLayout.PLAIN, description="plain or triton (model repository).")
    keep_runs: int = Field(default=5, ge=1, le=1000, description="Runs kept per target; older ones are deleted "
                           "oldest first, never the current one.")


class SecretRef(Model):
    name: str = Field(min_length=1, description="Secret in the same namespace.")


class Storage(Model):
    """Object storage connection; credentials only ever come from the Secret."""

    secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, exposed to the Job as env.",
    )
    endpoint: str | None = Field(default=None, description="S3 endpoint URL for non-AWS servers.")
    region: str | None = Field(default=None, description="S3 region.")


class Toleration(Model):
    key: str | None = Field(default=None, description="Taint key.")
    operator: str | None = Field(default=None, pattern=r"^(Exists|Equal)$", description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value.")
    effect: str | None = Field(
        default=None, pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$", description="Taint effect."
    )


class Resources(Model):
    """What each target Job's pod asks for."""

    gpu: int = Field(default=1, ge=0, description="nvidia.com/gpu per Job; 0 for a CPU-only cluster (the default, 1, "
                     "leaves a Job Unschedulable where no node has a GPU).")
    cpu: Quantity | None = Field(
        default=None, description="CPU request and limit, a Kubernetes quantity: 4 or 500m. Unset: none.",
        json_schema_extra={"x-kubernetes-int-or-string": True, "x-kubernetes-validations": QUANTITY_RULES})
    memory: Quantity | None = Field(
        default=None, description="Memory request and limit, a Kubernetes quantity: 16Gi or 16G. Unset: none.",
        json_schema_extra={"x-kubernetes-int-or-string": True, "x-kubernetes-validations": QUANTITY_RULES})
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels to match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for GPU taints.")


def _image_doc(backend: BackendName) -> str:
    return f"Image for {backend.value} targets (the operator's default: chart value workerImages.{image_key(backend)})."


class Images(Model):
    """Worker image overrides; unset fields use the operator's defaults."""

    # One field per backend, named option_field(backend) like Target's options blocks (a test checks).

    default: str | None = Field(default=None, description="Image for every backend without its own.")
    tensorrt: str | None = Field(default=None, description=_image_doc(BackendName.TENSORRT))
    tf_trt: str | None = Field(default=None, description=_image_doc(BackendName.TF_TRT))
    onnxruntime: str | None = Field(default=None, description=_image_doc(BackendName.ONNXRUNTIME))
    torch_compile: str | None = Field(default=None, description=_image_doc(BackendName.TORCH_COMPILE))
    pull_policy: str = Field(
        default="IfNotPresent", pattern=r"^(Always|IfNotPresent|Never)$", description="Image pull policy."
    )

    def for_backend(self, backend: BackendName) -> str | None:
        """The spec's own image for a backend, if it names one."""
        value: str | None = getattr(self, option_field(backend))
        return value


class ModelOptimizationSpec(Model):
    """What to optimize, how, and where the results go."""

    model: ModelSource = Field(description="The trained model.")
    targets: list[Target] = Field(min_length=1, max_length=32, description="Backend x precision targets.")
    calibration: Calibration | None = Field(default=None, description="Required by int8 targets.")
    validation: Validation = Field(default_factory=Validation, description="Accuracy check against baseline.")
    benchmark: Benchmark = Field(default_factory=Benchmark, description="Timing settings.")
    selection: Selection = Field(default_factory=Selection, description="How the best target is chosen.")
    preprocessing: Preprocessing | None = Field(default=None, description="Image folder preprocessing.")
    output: Output = Field(description="Where artifacts go.")
    storage: Storage = Field(default_factory=Storage, description="Object storage connection.")
    resources: Resources = Field(default_factory=Resources, description="Pod resources per target Job.")
    images: Images = Field(default_factory=Images, description="Worker image overrides.")
    parallelism: int = Field(default=1, ge=1, le=32, description="Target Jobs running at once.")
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Retries of a failed target Job.")
    active_deadline_seconds: int = Field(default=3600, ge=60, description="Deadline of each target Job.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete finished Jobs after this long (artifacts stay)."
    )
    suspend: bool = Field(default=False, description="true: create no new Jobs and suspend running ones.")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ModelOptimizationSpec:
        errors = cross_field_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self


def device_kind(spec: ModelOptimizationSpec) -> DeviceKind:
    """Where the spec's Jobs run: ``resources.gpu: 0`` is a CPU, anything more a GPU."""
    return DeviceKind.CPU if spec.resources.gpu == 0 else DeviceKind.GPU


def cross_field_errors(spec: ModelOptimizationSpec) -> list[str]:
    """Return the rule violations that a field's own schema cannot see (mirrored as CEL)."""
    errors: list[str] = []
    target_names = [t.name for t in spec.targets]
    duplicates = sorted({n for n in target_names if target_names.count(n) > 1})
    if duplicates:
        errors.append(f"spec.targets: names must be unique, repeated: {', '.join(duplicates)}")
    for index, target in enumerate(spec.targets):
        where = f"spec.targets[{index}] ({target.name})"
        if target.precision is Precision.INT8 and spec.calibration is None:
            errors.append(f"{where}: precision int8 needs spec.calibration (uri of calibration data)")
        errors += option_block_errors(where, target)
        errors += support_errors(where, target, spec)
    if spec.output.layout is OutputLayout.TRITON:
        served = " and ".join(sorted(triton_backends()))
        for index, target in enumerate(spec.targets):
            if target.backend not in triton_backends():
                errors.append(f"spec.targets[{index}] ({target.name}): output.layout triton serves {served} "
                              f"targets, not {target.backend.value}; use layout plain")
    batch = spec.selection.batch_size
    if batch is not None and batch not in spec.benchmark.batch_sizes:
        errors.append(f"spec.selection.batchSize: {batch} is not one of spec.benchmark.batchSizes")
    return errors


def option_block_errors(where: str, target: Target) -> list[str]:
    """An options block of another backend than the target's."""
    expected = image_key(target.backend)
    return [f"{where}: options block {image_key(other)} does not match backend {target.backend.value}; "
            f"use {expected}"
            for other in BACKENDS if other is not target.backend and getattr(target, option_field(other)) is not None]


def support_errors(where: str, target: Target, spec: ModelOptimizationSpec) -> list[str]:
    """What the target's backend does not support: its precision on this device kind, the model's
    format, the calibration method (int8 only). Each message names the field and what is supported."""
    errors: list[str] = []
    backend = BACKENDS[target.backend]
    device = device_kind(spec)
    if target.precision not in backend.precisions(device):
        errors.append(precision_error(where, target, device, spec.resources.gpu))
    if spec.model.format not in backend.formats:
        errors.append(f"spec.model.format: backend {backend.name.value} (target {target.name}) does not accept "
                      f"{spec.model.format.value}; it accepts {names(backend.formats, ModelFormat)}. "
                      f"{backend.format_hint}")
    if target.precision is Precision.INT8 and spec.calibration is not None:
        method = spec.calibration.method_for(target.backend)
        if method not in backend.calibration_methods:
            errors.append(f"spec.calibration.method: backend {backend.name.value} (int8 target {target.name}) does "
                          f"not calibrate with {method.value}; it offers {', '.join(backend.calibration_methods)} "
                          "(or leave method unset: each backend then uses its default)")
    return errors


def precision_error(where: str, target: Target, device: DeviceKind, gpus: int) -> str:
    backend = BACKENDS[target.backend]
    others = [d.name for d in BACKENDS.values() if target.precision in d.precisions(device)]
    if not backend.precisions(device):
        return (f"{where}.backend: {backend.name.value} needs a GPU (spec.resources.gpu is 0): set resources.gpu "
                f">= 1, or use a backend that builds on a CPU")
    return (f"{where}.precision: backend {backend.name.value} does not build {target.precision.value} on a "
            f"{device.value.upper()} (spec.resources.gpu: {gpus}); it builds {backend.supported_text(device)} there"
            + (f"; {target.precision.value} is built by {names(others, BackendName)}" if others else ""))


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = "local"
    namespace: str = "default"


class ModelOptimization(BaseModel):
    """The whole resource as a user writes it (status is ignored on input)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    api_version: str = Field(default=f"{GROUP}/{VERSION}", alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelOptimizationSpec

    @model_validator(mode="after")
    def _right_kind(self) -> ModelOptimization:
        if self.api_version != f"{GROUP}/{VERSION}" or self.kind != KIND:
            raise ValueError(f"apiVersion/kind must be {GROUP}/{VERSION} {KIND}, got {self.api_version} {self.kind}")
        return self


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The camelCase JSON form of a spec model, without unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
