"""Build the demo model: a small CNN trained in seconds on scikit-learn's bundled digits.

Writes, into the given folder: digits_cnn.pt2 (torch.export), digits_cnn.onnx, calibration.npz
(training images, keyed by input name) and validation.npz (held-out images with labels).
Nothing is downloaded: the digits ship inside scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

INPUT_NAME = "pixels"


class DigitsCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                       torch.nn.BatchNorm2d(cout), torch.nn.ReLU())

        self.features = torch.nn.Sequential(block(1, 32), block(32, 32), torch.nn.MaxPool2d(2), block(32, 64),
                                            block(64, 64), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(64, 10)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))


def digits_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8] in [0, 1]
    return tuple(train_test_split(images, digits.target.astype(np.int64), test_size=0.25, random_state=seed,
                                  stratify=digits.target))  # type: ignore[return-value]


def train(epochs: int = 15, seed: int = 0) -> tuple[DigitsCNN, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = digits_data(seed)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(epochs):
        order = torch.randperm(len(xs))
        for start in range(0, len(xs), 64):
            index = order[start:start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xs[index]), ys[index]).backward()
            optimizer.step()
    return model.eval(), x_train, x_test, y_train, y_test


def build(out: Path, epochs: int = 15) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    model, x_train, x_test, _, y_test = train(epochs)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    example = (torch.from_numpy(x_test[:2]),)
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, example, dynamic_shapes=({0: batch},))
    paths = {"pt2": out / "digits_cnn.pt2", "onnx": out / "digits_cnn.onnx",
             "torchscript": out / "digits_cnn.ts", "calibration": out / "calibration.npz",
             "validation": out / "validation.npz"}
    torch.export.save(program, str(paths["pt2"]))
    torch.jit.save(torch.jit.trace(model, example), str(paths["torchscript"]))
    torch.onnx.export(model, example, str(paths["onnx"]), input_names=[INPUT_NAME], output_names=["logits"],
                      dynamic_shapes=({0: batch},), dynamo=True, verbose=False, external_data=False)
    np.savez(paths["calibration"], **{INPUT_NAME: x_train})
    np.savez(paths["validation"], **{INPUT_NAME: x_test, "labels": y_test})
    print(f"digits CNN: test accuracy {accuracy:.4f} on {len(y_test)} held-out images; wrote {out}",
          file=sys.stderr)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, nargs="?", default=Path(__file__).parent / "model")
    parser.add_argument("--epochs", type=int, default=15)
    arguments = parser.parse_args()
    build(arguments.out, arguments.epochs)
