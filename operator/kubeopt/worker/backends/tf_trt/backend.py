"""TF-TRT backend: TrtGraphConverterV2 with the lecture's TF1-style parameters mapped honestly.

TensorFlow dropped TF-TRT from its pip builds at 2.18, so this backend needs an image with
TensorFlow <= 2.17 built against TensorRT. The TF1 parameters map onto TF2 like this:

* ``minimum_segment_size`` and ``max_workspace_size_bytes`` and ``maximum_cached_engines``
  go into ``TrtConversionParams`` unchanged; ``precision_mode`` is the target's precision.
* ``is_dynamic_op`` does not exist in TF2 (every engine is built lazily by default).
  ``true`` keeps that: engines are built at run time for the shapes seen, with dynamic
  shape profiles. ``false`` means static engines built ahead of time: ``converter.build()``
  over the benchmark batch sizes up to ``max_batch_size``, and
  ``allow_build_at_runtime=False`` so no engine is ever built in serving.
* ``max_batch_size`` no longer exists either; it bounds the shapes engines are built for.
* INT8 calibrates with ``calibration_input_fn`` over the spec's calibration data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from kubeopt.api.backends import describe
from kubeopt.api.spec import BackendName, Precision, TfTrtOptions
from kubeopt.worker import calibration
from kubeopt.worker.backends.base import BuildContext, Built
from kubeopt.worker.backends.tf_trt.runner import TfRunner
from kubeopt.worker.calibration_methods import Tool, calibrator
from kubeopt.worker.errors import BackendUnavailable, BuildFailed, InvalidSpec, first_line
from kubeopt.worker.frameworks import IMAGES, require
from kubeopt.worker.runners import Feeds
from kubeopt.worker.source import Representation

LAST_TF_WITH_TRT = (2, 17)
TF_TRT_PRECISIONS = describe(BackendName.TF_TRT).gpu  # precision_mode names only these


def conversion_params(options: TfTrtOptions, precision: Precision) -> dict[str, Any]:
    """Keyword arguments of TrtConversionParams for the options and precision."""
    if precision not in TF_TRT_PRECISIONS:
        raise InvalidSpec(f"tf-trt: precision {precision.value} is not supported; use fp32, fp16 or int8")
    return {
        "precision_mode": precision.value.upper(),
        "minimum_segment_size": options.minimum_segment_size,
        "max_workspace_size_bytes": options.max_workspace_size_bytes,
        "maximum_cached_engines": options.maximum_cached_engines,
        "use_calibration": precision is Precision.INT8,
        "allow_build_at_runtime": options.is_dynamic_op,
    }


def converter_kwargs(options: TfTrtOptions) -> dict[str, Any]:
    """TrtGraphConverterV2 arguments besides the conversion params."""
    return {"use_dynamic_shape": options.is_dynamic_op,
            "dynamic_shape_profile_strategy": "Range" if options.is_dynamic_op else None}


def build_batch_sizes(options: TfTrtOptions, benchmark_batches: list[int]) -> list[int]:
    """Batch sizes engines are built for ahead of time: the benchmark's, capped at max_batch_size."""
    sizes = sorted({min(b, options.max_batch_size) for b in benchmark_batches})
    return sizes or [options.max_batch_size]


def check_tensorflow_version(version: str) -> None:
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) > LAST_TF_WITH_TRT:
        raise BackendUnavailable("tf-trt", f"TF-TRT (TensorFlow {version} has none; 2.17 is the last with it)",
                                 IMAGES["tensorflow"])


def batches_fn(feeds_list: list[Feeds], tf: Any) -> Callable[[], Iterator[tuple[Any, ...]]]:
    def generate() -> Iterator[tuple[Any, ...]]:
        for feeds in feeds_list:
            yield tuple(tf.constant(v) for v in feeds.values())
    return generate


class TfTrtBackend:
    name: ClassVar[BackendName] = BackendName.TF_TRT
    consumes: ClassVar[Representation] = Representation.TENSORFLOW

    def check_available(self, device: str) -> None:
        tf = require("tensorflow", self.name.value)
        check_tensorflow_version(tf.__version__)
        require("tensorflow.python.compiler.tensorrt.trt_convert", self.name.value)

    def build(self, context: BuildContext) -> Built:
        tf = require("tensorflow", self.name.value)
        check_tensorflow_version(tf.__version__)
        trt_convert = require("tensorflow.python.compiler.tensorrt.trt_convert", self.name.value)
        options = context.target.tf_trt or TfTrtOptions()
        params = trt_convert.TrtConversionParams(**conversion_params(options, context.target.precision))
        samples, provenance = self._calibration_set(context)
        started = time.perf_counter()
        converter = trt_convert.TrtGraphConverterV2(
            input_saved_model_dir=str(context.source.saved_model_path()), conversion_params=params,
            **{k: v for k, v in converter_kwargs(options).items() if v is not None})
        try:
            if samples is not None:
                converter.convert(calibration_input_fn=batches_fn(samples, tf))
            else:
                converter.convert()
            if not options.is_dynamic_op:
                shapes = [context.calibration.batch_of(b) if context.calibration else
                          {k: np.repeat(v[:1], b, axis=0) for k, v in context.source.example.items()}
                          for b in build_batch_sizes(options, context.spec.benchmark.batch_sizes)]
                converter.build(input_fn=batches_fn(shapes, tf))
            converter.save(str(context.artifact_dir / "saved_model"))
        except Exception as error:
            raise BuildFailed(f"tf-trt conversion failed: {first_line(error)}") from error
        compile_seconds = time.perf_counter() - started
        details = {**conversion_params(options, context.target.precision), **converter_kwargs(options),
                   "tensorflow": tf.__version__}
        return Built(None, compile_seconds, calibration=provenance, details=details, model_files=("saved_model",))

    def load(self, context: BuildContext, built: Built) -> Built:
        """The written SavedModel's serving signature, as TensorFlow Serving loads it."""
        tf = require("tensorflow", self.name.value)
        try:
            loaded = tf.saved_model.load(str(context.artifact_dir / "saved_model"))
            signature = loaded.signatures["serving_default"]
        except Exception as error:
            raise BuildFailed(f"tf-trt: the written saved_model does not load back: {first_line(error)}") from error
        return replace(built, runner=TfRunner(tf, signature))

    def _calibration_set(self, context: BuildContext) -> tuple[list[Feeds] | None, dict[str, Any] | None]:
        """int8: the calibration batches and their provenance (TF-TRT's entropy calibrator)."""
        settings = context.spec.calibration
        if context.target.precision is not Precision.INT8:
            return None, None
        assert context.calibration is not None and settings is not None
        used = calibrator(Tool.TF_TRT, self.name, settings)
        data = context.calibration.take(settings.samples)
        return list(data.batches(settings.batch_size)), calibration.provenance(data, settings, len(data), used,
                                                                             used.tool.value)
