"""Each backend's options block (``spec.targets[].<backend>``), one pydantic model per backend.

``kubeopt.api.backends`` names the model in the backend's description; ``Target`` carries one
optional field per backend, named by ``kubeopt.api.backends.option_field``.
"""

from __future__ import annotations

from pydantic import Field

from kubeopt.api.base import Model


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
