"""Image names and tags come from operator/kubeopt/api/images.env alone.

The chart's values, the operator's defaults and `make images` must name the same images: a chart
pointing at a tag nobody builds fails only on a real cluster, at the first pull.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from kubeopt.api.images import backend_images, default_worker_image, image, image_settings, operator_image
from kubeopt.api.spec import BackendName, Images
from kubeopt.controller.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeopt"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
#: values.yaml's workerImages key of each backend.
VALUE_KEYS = {BackendName.TENSORRT: "tensorrt", BackendName.TF_TRT: "tfTrt", BackendName.ONNXRUNTIME: "onnxruntime",
              BackendName.TORCH_COMPILE: "torchCompile"}


def test_the_chart_version_and_the_package_version_are_the_image_tag() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = image_settings()["KUBEOPT_VERSION"]
    assert chart["appVersion"] == version
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == version


def test_the_charts_operator_image_is_the_one_make_images_tags() -> None:
    tag = VALUES["image"]["tag"] or yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert f"{VALUES['image']['repository']}:{tag}" == operator_image()


def test_the_charts_worker_images_are_the_operators_defaults() -> None:
    assert VALUES["workerImages"]["default"] == default_worker_image()
    for backend, reference in backend_images().items():
        assert VALUES["workerImages"][VALUE_KEYS[backend]] == reference


def test_the_operator_without_image_settings_uses_each_backends_published_image() -> None:
    settings = OperatorSettings.from_env({})
    for backend, reference in backend_images().items():
        assert settings.image_for(backend, Images()) == reference


def test_every_published_image_has_a_containerfile_and_the_makefile_reads_the_names_file() -> None:
    names = {value for key, value in image_settings().items() if key.startswith("IMAGE_")}
    assert names == {p.parent.name for p in (ROOT / "images").glob("*/Containerfile")}
    assert re.search(r"^include operator/kubeopt/api/images\.env$", (ROOT / "Makefile").read_text(), re.M)


def test_a_reference_is_registry_name_and_version() -> None:
    settings = image_settings()
    assert image("IMAGE_WORKER_TORCH") == f"{settings['KUBEOPT_REGISTRY']}/{settings['IMAGE_WORKER_TORCH']}:" \
        f"{settings['KUBEOPT_VERSION']}"
