"""Calibration and validation data: an .npz keyed by input name, or a folder of images.

Every check names the file and the input so the user knows what to fix. Data is hashed so the
report can say exactly which samples calibrated or validated a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubeopt.api.spec import Preprocessing, Task, TensorSpec
from kubeopt.worker.errors import InvalidSpec, WorkerError

LABELS_KEY = "labels"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm"}
NUMPY_DTYPES = {
    "float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_, "bfloat16": np.float32,
}


@dataclass(frozen=True)
class Dataset:
    """Samples keyed by input name (first axis is the sample axis), optional integer labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    sha256: str
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, count: int) -> Dataset:
        labels = None if self.labels is None else self.labels[:count]
        return Dataset({k: v[:count] for k, v in self.inputs.items()}, labels, self.sha256, self.source)

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), batch_size):
            yield {k: v[start:start + batch_size] for k, v in self.inputs.items()}

    def batch_of(self, size: int) -> dict[str, np.ndarray]:
        """Exactly ``size`` samples, repeating the data when there are fewer."""
        indices = np.arange(size) % len(self)
        return {k: np.ascontiguousarray(v[indices]) for k, v in self.inputs.items()}


def load_dataset(path: Path, inputs: list[TensorSpec], preprocessing: Preprocessing | None,
                 error: type[WorkerError], field: str) -> Dataset:
    """Read ``path`` (a local .npz file or image folder) and check it against the model inputs.

    Raises ``error`` naming ``field`` when the data is missing, unreadable or the wrong shape.
    """
    if not path.exists():
        raise error(f"{field}: {path} does not exist")
    if path.is_dir():
        dataset = _load_image_folder(path, inputs, preprocessing or Preprocessing(), error, field)
    else:
        dataset = _load_npz(path, error, field)
    return _checked(dataset, inputs, error, field)


def _load_npz(path: Path, error: type[WorkerError], field: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as failure:  # numpy raises several types for a bad archive
        raise error(f"{field}: {path.name} is not a readable .npz archive ({failure})") from failure
    labels = arrays.pop(LABELS_KEY, None)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Dataset(arrays, labels, digest, str(path))


def _load_image_folder(path: Path, inputs: list[TensorSpec], prep: Preprocessing,
                       error: type[WorkerError], field: str) -> Dataset:
    if len(inputs) != 1:
        raise error(f"{field}: an image folder feeds one input; the model has {len(inputs)}; use an .npz")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise error(f"{field}: {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = sorted({p.parent.name for p in files if p.parent != path})
    digest = hashlib.sha256()
    images = []
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
        images.append(_preprocess(file, prep, error, field))
    labels = np.array([classes.index(p.parent.name) for p in files]) if classes else None
    return Dataset({inputs[0].name: np.stack(images)}, labels, digest.hexdigest(), str(path))


def _preprocess(file: Path, prep: Preprocessing, error: type[WorkerError], field: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as missing:
        raise error(f"{field}: reading images needs Pillow, which is not installed in this image") from missing
    try:
        with Image.open(file) as opened:
            image = opened.convert("L" if prep.grayscale else "RGB")
            if prep.resize:
                image = image.resize((prep.resize[1], prep.resize[0]))
            pixels = np.asarray(image, dtype=np.float32)
    except OSError as failure:
        raise error(f"{field}: {file.name} is not a readable image ({failure})") from failure
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    mean = np.asarray(prep.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(prep.std, dtype=np.float32).reshape(-1, 1, 1)
    return ((pixels * prep.scale - mean) / std).astype(np.float32)


def _checked(dataset: Dataset, inputs: list[TensorSpec], error: type[WorkerError], field: str) -> Dataset:
    missing = [spec.name for spec in inputs if spec.name not in dataset.inputs]
    if missing:
        raise error(f"{field}: {Path(dataset.source).name} lacks input(s) {', '.join(missing)}; "
                    f"it has {', '.join(sorted(dataset.inputs)) or 'no arrays'}")
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        array = dataset.inputs[spec.name]
        expected = spec.shape[1:]
        actual = list(array.shape[1:])
        fits = len(actual) == len(expected) and all(e in (-1, a) for e, a in zip(expected, actual, strict=True))
        if array.ndim == 0 or not fits:
            raise error(f"{field}: {Path(dataset.source).name}, key {spec.name!r}: input {spec.name} has sample "
                        f"shape {actual}, the model expects {expected} (-1 is dynamic); check model.inputs or the data")
        arrays[spec.name] = np.ascontiguousarray(array.astype(NUMPY_DTYPES[spec.dtype], copy=False))
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise error(f"{field}: every input needs the same, non-zero number of samples; got {sorted(counts)}")
    count = len(next(iter(arrays.values())))
    _check_finite(arrays, dataset.source, error, field)
    _check_labels(dataset.labels, count, dataset.source, error, field)
    return Dataset(arrays, dataset.labels, dataset.sha256, dataset.source)


def _check_finite(arrays: dict[str, np.ndarray], source: str, error: type[WorkerError], field: str) -> None:
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue
        finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if not finite.all():
            index = int(np.argmin(finite))
            raise error(f"{field}: {Path(source).name}, key {name!r}: sample {index} holds a non-finite value "
                        f"(NaN or infinity), {int((~finite).sum())} samples in all; fix or drop them")


def _check_labels(labels: np.ndarray | None, count: int, source: str, error: type[WorkerError], field: str) -> None:
    if labels is None:
        return
    where = f"{field}: {Path(source).name}, key '{LABELS_KEY}'"
    if labels.ndim != 1 or len(labels) != count:
        raise error(f"{where}: {len(labels) if labels.ndim else 0} labels (shape {list(labels.shape)}) for "
                    f"{count} samples; give one class index per sample")
    if not np.issubdtype(labels.dtype, np.integer):
        raise error(f"{where}: dtype {labels.dtype}; labels are class indices, so save them as integers "
                    "(e.g. labels.astype('int64'))")
    negative = np.flatnonzero(labels < 0)
    if negative.size:
        raise error(f"{where}: sample {int(negative[0])} has label {int(labels[negative[0]])}; class indices start "
                    "at 0")


def check_against_outputs(data: Dataset, outputs: list[np.ndarray], task: Task, field: str,
                          error: type[WorkerError]) -> None:
    """Check the data's labels against what the model returns, before any target is built.

    A classifier's first output must be a class score vector per sample ([batch, classes]), and
    every label a class index below ``classes``. Raises InvalidSpec (model.task) or ``error``.
    """
    if task is not Task.CLASSIFICATION:
        return
    scores = outputs[0]
    wide = [d for d in scores.shape[1:] if d != 1]
    if len(wide) != 1 or wide[0] < 2:
        raise InvalidSpec(f"model.task: classification needs the model's first output to be class scores "
                          f"[batch, classes]; it has shape {list(scores.shape)}; set model.task: generic")
    classes = wide[0]
    if data.labels is None:
        return
    beyond = np.flatnonzero(data.labels >= classes)
    if beyond.size:
        raise error(f"{field}: {Path(data.source).name}, key '{LABELS_KEY}': sample {int(beyond[0])} has label "
                    f"{int(data.labels[beyond[0]])}, but the model's output has {classes} classes (labels 0.."
                    f"{classes - 1}); {beyond.size} labels in all are out of range")


def random_dataset(inputs: list[TensorSpec], samples: int, seed: int = 0) -> Dataset:
    """Random inputs for models without data; dynamic non-batch dimensions are not allowed here."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for index, spec in enumerate(inputs):
        dims = spec.shape[1:]
        if any(d == -1 for d in dims):
            raise InvalidSpec(f"model.inputs[{index}] ({spec.name}) has a dynamic dimension besides the batch; "
                              "give validation.uri data so real shapes are known")
        dtype = NUMPY_DTYPES[spec.dtype]
        if np.issubdtype(dtype, np.integer):
            arrays[spec.name] = rng.integers(0, 100, size=(samples, *dims)).astype(dtype)
        elif dtype is np.bool_:
            arrays[spec.name] = np.ones((samples, *dims), dtype=dtype)
        else:
            arrays[spec.name] = rng.standard_normal((samples, *dims)).astype(dtype)
    return Dataset(arrays, None, f"random-seed-{seed}", "random")
