"""The images `make images` builds, run as a cluster runs them: what is in them and what breaks them.

The rest of the suite runs the operator and every Job pod from these images (``OperatorProcess``,
``FakeKubelet(images=...)``); these tests check the images' own contract (user, read-only root,
no ML framework in the operator, the CPU worker's backend) and that a broken image cannot pass:
one without a module, or whose PATH does not lead to the command the chart runs.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.images import Container, Mount, derived_image, image_config, image_ref, remove_image, run_in_image
from kubeopt_e2e.operator import CHART, E2E_WORKER_ENV, OperatorProcess, service_account_kubeconfig
from kubeopt_e2e.procs import StartupError

FRAMEWORKS = ("torch", "onnx", "onnxruntime", "tensorflow", "tensorrt", "sklearn")
SITE_PACKAGES = "/opt/kubeopt/lib/python3.11/site-packages"
PROBE = """
import importlib.util, json, os, pathlib
def writable(path):
    try:
        pathlib.Path(path, ".probe").write_text("x")
        return True
    except OSError:
        return False
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "root_writable": writable("/"),
                  "tmp_writable": writable("/tmp"),
                  "modules": {m: importlib.util.find_spec(m) is not None for m in %r}}))
"""

# Python's own acceptance rule for a cached module (importlib._bootstrap_external): a timestamp pyc
# is used only while the source's mtime and size match its header; a hash-based one, unchecked or
# with a matching source hash. A rejected pyc means the module is compiled again in every process.
BYTECODE_PROBE = """
import importlib.util, json, os, struct, sys, sysconfig
roots = sorted({sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")})
checked, rejected = 0, []
for root in roots:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith(".py"):
                continue
            source = os.path.join(folder, name)
            cached = importlib.util.cache_from_source(source)
            if not os.path.exists(cached):
                continue  # never imported from a cache here (scripts, templates, files that do not compile)
            checked += 1
            header = open(cached, "rb").read(16)
            flags, stamp, size = struct.unpack("<III", header[4:16])
            if flags & 1:
                good = not flags & 2 or header[8:16] == importlib.util.source_hash(open(source, "rb").read())
            else:
                st = os.stat(source)
                good = stamp == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF
            if not good:
                rejected.append(source)
print(json.dumps({"roots": roots, "checked": checked, "rejected": len(rejected), "examples": rejected[:5]}))
"""


def probe(image: str, tmp_path: Path, modules: tuple[str, ...]) -> dict[str, object]:
    """What a pod of the chart's shape finds in ``image``: 65532, read-only root, /tmp an emptyDir."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o1777)
    container = Container(image=image, command=["python3", "-c", PROBE % (modules,)], user="65532:65532",
                          read_only_root=True, mounts=[Mount(scratch, "/tmp")])
    result = run_in_image(container, tmp_path / "container")
    assert result.returncode == 0, result.stdout
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_operator_image_runs_as_65532_on_a_read_only_root_without_any_ml_framework(tmp_path: Path) -> None:
    image = image_ref("operator")
    config = image_config(image)

    found = probe(image, tmp_path, (*FRAMEWORKS, "kopf", "kubernetes", "kubeopt.controller.main"))

    assert config.user == "65532:65532"
    assert (found["uid"], found["gid"], found["root_writable"], found["tmp_writable"]) == (65532, 65532, False, True)
    assert found["modules"] == {**dict.fromkeys(FRAMEWORKS, False), "kopf": True, "kubernetes": True,
                                "kubeopt.controller.main": True}


def test_the_cpu_worker_image_has_onnxruntime_and_its_kubeopt_run_answers(tmp_path: Path) -> None:
    image = image_ref("worker-onnxruntime")

    found = probe(image, tmp_path, ("onnxruntime", "onnx", "numpy", "boto3", "torch", "tensorflow"))
    help_text = run_in_image(Container(image=image, command=["kubeopt", "run", "--help"], user="65532:65532",
                                       read_only_root=True), tmp_path / "help")

    assert found["modules"] == {"onnxruntime": True, "onnx": True, "numpy": True, "boto3": True, "torch": False,
                                "tensorflow": False}
    assert help_text.returncode == 0 and "--termination-log" in help_text.stdout, help_text.stdout


@pytest.mark.parametrize("name", ["operator", "worker-onnxruntime"])
def test_every_cached_module_in_the_image_is_one_python_accepts_so_nothing_is_compiled_at_start(
        name: str, tmp_path: Path) -> None:
    container = Container(image=image_ref(name), command=["python3", "-c", BYTECODE_PROBE], user="65532:65532",
                          read_only_root=True)

    result = run_in_image(container, tmp_path / "container")

    assert result.returncode == 0, result.stdout
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["checked"] > 1000, found  # the site-packages' and the standard library's
    assert found["rejected"] == 0, found


def test_the_images_carry_their_source_version_and_revision() -> None:
    for name in ("operator", "worker-onnxruntime"):
        labels = json.loads(subprocess.run(["podman", "image", "inspect", "--format", "{{json .Labels}}",
                                            image_ref(name)], capture_output=True, text=True, check=True).stdout)
        assert labels["org.opencontainers.image.source"].startswith("https://")
        assert labels["org.opencontainers.image.version"] == "0.1.0"
        assert len(labels["org.opencontainers.image.revision"]) == 40, labels


@pytest.fixture(scope="module")
def operator_kubeconfig(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    kubeconfig, _ = service_account_kubeconfig(kubectl, helm_offline, CHART,
                                               tmp_path_factory.mktemp("images-sa") / "kubeconfig")
    return kubeconfig


@pytest.fixture
def broken_image(request: pytest.FixtureRequest) -> Iterator[str]:
    tag, changes = request.param
    image = derived_image(image_ref("operator"), tag, **changes)
    try:
        yield image
    finally:
        remove_image(image)


@pytest.mark.parametrize("broken_image, failure", [
    (("no-kopf:e2e", {"remove": [f"{SITE_PACKAGES}/kopf"]}), r"No module named 'kopf'"),
    (("no-venv-on-path:e2e", {"env": {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}}),
     r"env: .kubeopt.: No such file or directory"),  # env quotes it as the locale does
], indirect=["broken_image"], ids=["without-kopf", "kubeopt-not-on-path"])
def test_an_operator_image_that_lacks_a_module_or_its_command_never_gets_ready(
        operator_kubeconfig: Path, broken_image: str, failure: str, tmp_path: Path) -> None:
    operator = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log", env=E2E_WORKER_ENV,
                               image=broken_image)
    try:
        with pytest.raises(StartupError) as error:
            operator.start(timeout=60)
    finally:
        operator.stop()

    assert "exited while waiting" in str(error.value)
    log = (tmp_path / "operator.log").read_text()
    assert re.search(failure, log), log
