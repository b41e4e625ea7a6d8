"""The ModelOptimization v1alpha1 spec as pydantic models.

These models are the single source of the resource's shape: the CRD's OpenAPI schema is
generated from them (``kubeopt.api.crd``), the worker parses the same YAML a user applies,
and the controller reads the same fields. Every field carries a description so that
``kubectl explain`` helps. Cross-field rules live in ``ModelOptimizationSpec``'s validator
and are mirrored as CEL rules in the CRD so the API server rejects the same specs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "kubeopt.io"
VERSION = "v1alpha1"
KIND = "ModelOptimization"
PLURAL = "modeloptimizations"
SINGULAR = "modeloptimization"
SHORT_NAMES = ["mopt"]
TARGET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        use_enum_values=False,
    )


class ModelFormat(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"
    TENSORFLOW_SAVEDMODEL = "tensorflow-savedmodel"
    KERAS = "keras"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    GENERIC = "generic"


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
    ENTROPY = "entropy"
    MINMAX = "minmax"
    PERCENTILE = "percentile"


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


class ModelSource(Model):
    """Where the trained model is and how to read it."""

    uri: str = Field(min_length=1, description="Model location: s3://bucket/key, file:///path or a path.")
    format: ModelFormat = Field(description="Serialization format of the model.")
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


class TensorRTOptions(Model):
    """TensorRT 10/11 engine build options (ONNX parser, strongly typed network)."""

    workspace_bytes: int = Field(default=4 << 30, ge=1 << 20, description="Workspace memory pool limit.")
    builder_optimization_level: int = Field(default=3, ge=0, le=5, description="0 (fast build) to 5.")
    timing_cache: bool = Field(default=True, description="Save and reuse the timing cache with artifacts.")
    opt_batch_size: int | None = Field(
        default=None, ge=1,
        description="Batch size the optimization profile tunes for (default: the largest benchmark size).",
    )
    max_batch_size: int | None = Field(
        default=None, ge=1, description="Largest batch of the profile (default: the largest benchmark size)."
    )
    quantizer: str = Field(
        default="auto", pattern=r"^(auto|modelopt|onnxruntime)$",
        description="Who writes the Q/DQ ONNX for int8: NVIDIA ModelOpt where installed, else ONNX Runtime.",
    )


class TfTrtOptions(Model):
    """TF-TRT (TrtGraphConverterV2) options, named as in the TF1 API the lecture teaches."""

    minimum_segment_size: int = Field(default=3, ge=1, description="Smallest subgraph TensorRT takes over.")
    is_dynamic_op: bool = Field(
        default=True,
        description="true: engines built at run time for the shapes seen; false: engines built ahead "
        "with converter.build() and allow_build_at_runtime=False.",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Largest batch engines are built for.")
    max_workspace_size_bytes: int = Field(default=1 << 30, ge=1 << 20, description="Workspace per engine.")
    maximum_cached_engines: int = Field(default=1, ge=1, description="Engines cached per TRT op.")


class OnnxRuntimeOptions(Model):
    """ONNX Runtime session and quantization options."""

    graph_optimization_level: str = Field(
        default="all", pattern=r"^(disable|basic|extended|all)$", description="disable, basic, extended or all."
    )
    intra_op_threads: int = Field(default=0, ge=0, description="Threads inside an operator (0: runtime picks).")
    inter_op_threads: int = Field(default=0, ge=0, description="Threads across operators (0: runtime picks).")
    execution_provider: str = Field(
        default="auto",
        pattern=r"^(auto|CPUExecutionProvider|CUDAExecutionProvider|TensorrtExecutionProvider)$",
        description="auto picks TensorRT, then CUDA, then CPU among the providers installed.",
    )
    per_channel: bool = Field(default=True, description="int8: per-channel weight scales.")
    activation_type: str = Field(
        default="uint8", pattern=r"^(uint8|int8)$",
        description="int8 activations: uint8 (U8S8, fastest on x86 VNNI) or int8 (S8S8, symmetric).",
    )


class TorchCompileOptions(Model):
    """torch.compile arguments, as the lecture lists them, plus layout."""

    mode: str = Field(
        default="default", pattern=r"^(default|reduce-overhead|max-autotune|max-autotune-no-cudagraphs)$",
        description="default, reduce-overhead (CUDA graphs), max-autotune or max-autotune-no-cudagraphs.",
    )
    fullgraph: bool = Field(default=False, description="Fail instead of falling back on graph breaks.")
    dynamic: bool | None = Field(
        default=None,
        description="true: one graph with a symbolic batch; false or unset: one static graph per batch size.",
    )
    backend: str = Field(default="inductor", min_length=1, description="Any registered torch.compile backend.")
    options: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Backend options, e.g. {\"epilogue_fusion\": true}."
    )
    channels_last: bool = Field(default=False, description="Convert 4-D inputs and weights to channels-last.")
    cudnn_benchmark: bool = Field(
        default=True,
        description="On a GPU, let cuDNN time its convolution algorithms once per static shape and keep the "
        "fastest (the graphs are static per batch size, so this pays once).",
    )
    conv_epilogue_fusion: bool = Field(
        default=True,
        description="On a GPU, for torch-export models: fold batch norm into the preceding convolution and run "
        "conv+bias+ReLU and conv+bias+residual-add+ReLU as single cuDNN fused calls instead of a convolution "
        "followed by separate elementwise kernels (with int8, the convolutions that stay fp16). Ignored on a CPU "
        "and for TorchScript models.",
    )


class Target(Model):
    """One backend x precision combination to build, validate and benchmark."""

    name: str = Field(
        min_length=1, max_length=30, pattern=TARGET_NAME_PATTERN,
        description="Unique name, a DNS label of at most 30 characters.",
    )
    backend: BackendName = Field(description="tensorrt, tf-trt, onnxruntime or torch-compile.")
    precision: Precision = Field(
        default=Precision.FP32,
        description="fp32, fp16, bf16, int8 (calibrated on a CPU and for TensorRT/ONNX Runtime; torch-compile on "
        "a GPU: int8 linear and 1x1 convolution GEMMs with run-time activation scales, the rest fp16), or fp8 "
        "(torch-compile on GPUs with compute capability 8.9+: float8 e4m3 linear layers, the rest bf16).",
    )
    tensorrt: TensorRTOptions | None = Field(default=None, description="Options when backend is tensorrt.")
    tf_trt: TfTrtOptions | None = Field(default=None, description="Options when backend is tf-trt.")
    onnxruntime: OnnxRuntimeOptions | None = Field(default=None, description="Options when backend is onnxruntime.")
    torch_compile: TorchCompileOptions | None = Field(
        default=None, description="Options when backend is torch-compile."
    )


OPTION_FIELD_BY_BACKEND: dict[BackendName, str] = {
    BackendName.TENSORRT: "tensorrt",
    BackendName.TF_TRT: "tf_trt",
    BackendName.ONNXRUNTIME: "onnxruntime",
    BackendName.TORCH_COMPILE: "torch_compile",
}


TRITON_BACKENDS = frozenset({BackendName.ONNXRUNTIME, BackendName.TENSORRT})


class Calibration(Model):
    """INT8 calibration data and method."""

    uri: str = Field(min_length=1, description="An .npz keyed by input name, or a folder of images.")
    samples: int = Field(default=512, ge=1, description="How many samples to calibrate on.")
    batch_size: int = Field(default=32, ge=1, description="Calibration batch size.")
    method: CalibrationMethod = Field(default=CalibrationMethod.ENTROPY, description="entropy, minmax, percentile.")
    percentile: float = Field(default=99.999, gt=90.0, le=100.0, description="Percentile for method percentile.")


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

    uri: str | None = Field(
        default=None,
        description="An .npz keyed by input name (optional 'labels' array), or a folder of images. "
        "Unset: the calibration data, else random inputs.",
    )
    samples: int = Field(default=1000, ge=1, description="At most this many samples.")
    budget: AccuracyBudget = Field(default_factory=AccuracyBudget, description="The accuracy budget.")


class Benchmark(Model):
    """Side-by-side timing of baseline and target."""

    batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 8, 32], min_length=1, description="Batch sizes to time."
    )
    warmup: int = Field(default=10, ge=0, description="Untimed iterations first.")
    iterations: int = Field(default=50, ge=1, description="Timed iterations per batch size.")

    @model_validator(mode="after")
    def _batch_sizes_positive(self) -> Benchmark:
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError("benchmark.batchSizes: every batch size must be >= 1")
        return self


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

    uri: str = Field(min_length=1, description="s3://bucket/prefix, file:///path or a path.")
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

    gpu: int = Field(default=1, ge=0, description="nvidia.com/gpu per Job (0: CPU only).")
    cpu: str | None = Field(default=None, description="CPU request and limit, e.g. '4'.")
    memory: str | None = Field(default=None, description="Memory request and limit, e.g. '16Gi'.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels to match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for GPU taints.")


class Images(Model):
    """Worker image overrides; unset fields use the operator's defaults."""

    default: str | None = Field(default=None, description="Image for every backend without its own.")
    tensorrt: str | None = Field(default=None, description="Image for tensorrt targets.")
    tf_trt: str | None = Field(default=None, description="Image for tf-trt targets (TensorFlow <= 2.17).")
    onnxruntime: str | None = Field(default=None, description="Image for onnxruntime targets.")
    torch_compile: str | None = Field(default=None, description="Image for torch-compile targets.")
    pull_policy: str = Field(
        default="IfNotPresent", pattern=r"^(Always|IfNotPresent|Never)$", description="Image pull policy."
    )


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
        for message in cross_field_errors(self):
            raise ValueError(message)
        return self


def cross_field_errors(spec: ModelOptimizationSpec) -> list[str]:
    """Return the rule violations that a field's own schema cannot see (mirrored as CEL)."""
    errors: list[str] = []
    names = [t.name for t in spec.targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"spec.targets: names must be unique, repeated: {', '.join(duplicates)}")
    for index, target in enumerate(spec.targets):
        where = f"spec.targets[{index}] ({target.name})"
        if target.precision is Precision.INT8 and spec.calibration is None:
            errors.append(f"{where}: precision int8 needs spec.calibration (uri of calibration data)")
        if target.precision is Precision.FP8 and target.backend is not BackendName.TORCH_COMPILE:
            errors.append(f"{where}: precision fp8 is only for backend torch-compile")
        expected = OPTION_FIELD_BY_BACKEND[target.backend]
        for field in OPTION_FIELD_BY_BACKEND.values():
            if field != expected and getattr(target, field) is not None:
                errors.append(
                    f"{where}: options block {to_camel(field)} does not match backend "
                    f"{target.backend.value}; use {to_camel(expected)}"
                )
    if spec.output.layout is OutputLayout.TRITON:
        for index, target in enumerate(spec.targets):
            if target.backend not in TRITON_BACKENDS:
                errors.append(f"spec.targets[{index}] ({target.name}): output.layout triton serves onnxruntime and "
                              f"tensorrt targets, not {target.backend.value}; use layout plain")
    batch = spec.selection.batch_size
    if batch is not None and batch not in spec.benchmark.batch_sizes:
        errors.append(f"spec.selection.batchSize: {batch} is not one of spec.benchmark.batchSizes")
    return errors


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
