"""The Containerfiles under images/, read as text: the contract every image keeps.

Only the operator and the CPU worker are built here (`make images`, and e2e runs them); the GPU
images need NVIDIA's bases and a GPU, so what can be checked without building them is checked here:
non-root, OCI labels, installs through the lock files, and the GPU images keep their base's
framework (images/constraints.py, tested below on a made-up base).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
CONTAINERFILES = sorted(IMAGES.glob("*/Containerfile"))
GPU = ("worker-torch", "worker-tensorrt", "worker-tftrt")
LABELS = ("org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision")


def load_constraints() -> ModuleType:
    spec = importlib.util.spec_from_file_location("constraints", IMAGES / "constraints.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.M)[-1]


@pytest.mark.parametrize("path", CONTAINERFILES, ids=lambda p: p.parent.name)
def test_every_image_runs_as_65532_with_oci_labels_and_a_public_default_base(path: Path) -> None:
    text = path.read_text()
    final = final_stage(text)

    assert re.search(r"^USER 65532:65532$", final, re.M), f"{path}: the final stage must run as 65532:65532"
    for label in LABELS:
        assert f"{label}=" in final, f"{path} lacks the label {label}"
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base and re.match(r"(docker\.io|nvcr\.io)/", base[1]), f"{path}: BASE must default to a public image"


@pytest.mark.parametrize("path", CONTAINERFILES, ids=lambda p: p.parent.name)
def test_every_image_installs_through_a_lock_file_with_no_pip_cache(path: Path) -> None:
    installs = re.findall(r"pip install ([^\n]*)", path.read_text().replace("\\\n", " "))

    assert installs, f"{path} installs nothing"
    for install in installs:
        assert "--no-cache-dir" in install and re.search(r"-c /(src/requirements|tmp)/\S+\.txt", install), install


@pytest.mark.parametrize("name", ["operator", "worker-onnxruntime"])
def test_the_local_images_leave_pip_and_the_sources_in_the_build_stage(name: str) -> None:
    text = (IMAGES / name / "Containerfile").read_text()
    final = final_stage(text)

    assert "AS build" in text and "COPY --from=build /opt/kubeopt /opt/kubeopt" in final
    assert "pip uninstall --yes --disable-pip-version-check setuptools pip" in text
    assert "/src" not in final


@pytest.mark.parametrize("name", GPU)
def test_a_gpu_image_keeps_its_bases_distributions(name: str) -> None:
    text = (IMAGES / name / "Containerfile").read_text()

    assert "python3 /src/images/constraints.py" in text and "-c /tmp/constraints.txt" in text


def test_constraints_keep_the_bases_versions_and_pin_only_what_it_lacks() -> None:
    constraints = load_constraints()
    base = {"torch": "2.9.0a0+nv25.10", "numpy": "1.26.4", "nvidia-cublas-cu12": "12.9.1.4"}
    lock = "torch==2.15.0\nnumpy==2.4.6\n    # via kubeopt\nonnx==1.23.2\nonnx-ir==1.1.0 ; sys_platform == 'linux'\n"

    lines = constraints.constraints(base, [lock, "onnx==1.0.0\nPillow==12.0.0\n"])

    assert lines == ["numpy==1.26.4", "nvidia-cublas-cu12==12.9.1.4", "torch==2.9.0a0+nv25.10", "onnx==1.23.2",
                     "onnx-ir==1.1.0 ; sys_platform == 'linux'", "Pillow==12.0.0"]


def test_constraints_read_this_interpreters_distributions() -> None:
    installed = load_constraints().installed()

    assert "pytest" in installed and installed["pytest"] == pytest.__version__
