from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kubeopt.api.spec import Preprocessing, TensorSpec
from kubeopt.worker.data import load_dataset, random_dataset
from kubeopt.worker.errors import CalibrationDataInvalid, InvalidSpec

PIXELS = [TensorSpec(name="pixels", shape=[-1, 1, 8, 8])]


def test_image_folder_with_class_subfolders_gives_preprocessed_tensors_and_labels(tmp_path: Path) -> None:
    for label, value in (("cat", 0), ("dog", 255)):
        (tmp_path / label).mkdir()
        for index in range(3):
            Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(tmp_path / label / f"{index}.png")
    prep = Preprocessing(resize=[8, 8], grayscale=True, mean=[0.5], std=[0.5])

    data = load_dataset(tmp_path, PIXELS, prep, CalibrationDataInvalid, "calibration.uri")

    assert data.inputs["pixels"].shape == (6, 1, 8, 8)
    assert data.labels is not None and list(data.labels) == [0, 0, 0, 1, 1, 1]
    assert data.inputs["pixels"].min() == -1.0 and data.inputs["pixels"].max() == 1.0


def test_data_digest_changes_when_an_image_changes(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    before = load_dataset(tmp_path, PIXELS, Preprocessing(grayscale=True), CalibrationDataInvalid, "c").sha256
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "a.png")

    after = load_dataset(tmp_path, PIXELS, Preprocessing(grayscale=True), CalibrationDataInvalid, "c").sha256

    assert before != after


def test_empty_folder_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataInvalid, match=r"calibration.uri: .* holds no images"):
        load_dataset(tmp_path, PIXELS, None, CalibrationDataInvalid, "calibration.uri")


def test_batch_of_repeats_samples_to_reach_the_batch_size() -> None:
    data = random_dataset(PIXELS, 3)

    assert data.batch_of(7)["pixels"].shape == (7, 1, 8, 8)


def test_random_data_cannot_guess_a_dynamic_sequence_length() -> None:
    with pytest.raises(InvalidSpec, match=r"give validation.uri data"):
        random_dataset([TensorSpec(name="ids", shape=[-1, -1], dtype="int64")], 4)
