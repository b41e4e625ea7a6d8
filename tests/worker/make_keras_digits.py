"""Train a small Keras CNN on scikit-learn's digits (NHWC) and save it as .keras and as a SavedModel.

Run as a separate process by test_tensorflow.py: TensorFlow and Triton (loaded by torch.compile)
abort when both are loaded into one process, and the test process runs torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits


def main(folder: Path) -> None:
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., None]
    labels = digits.target.astype(np.int64)
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 1), name="pixels")
    hidden = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    hidden = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu")(hidden)
    hidden = tf.keras.layers.Flatten()(hidden)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(hidden))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[:1400], labels[:1400], epochs=10, batch_size=64, verbose=0)
    model.save(folder / "digits.keras")
    model.export(str(folder / "saved_model"), verbose=False)
    np.savez(folder / "calibration.npz", pixels=images[:1400])
    np.savez(folder / "validation.npz", pixels=images[1400:], labels=labels[1400:])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
