"""Session fixtures for e2e tests: a real control plane, a real S3 server, kubectl and helm.

Run from the repository root: ``python -m pytest e2e -q``. The first run builds the binaries
(``e2e/build.sh``, 10-25 minutes on two cores) and the operator image (``images/build.sh``, a few
minutes) before any test starts; later runs reuse them.

Environment:
  KUBEOPT_E2E_BIN_DIR          use these binaries, do not run build.sh
  KUBEOPT_E2E_BIN              cache root for build.sh (default ~/.cache/kubeopt-e2e/bin)
  KUBEOPT_E2E_USE_KUBECONFIG=1 with KUBECONFIG set: test against that cluster instead
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeopt_e2e import ControlPlane, S3Server, bin_dir
from kubeopt_e2e.clients import Helm, Kubectl, uses_external_cluster
from kubeopt_e2e.images import image_ref

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real control plane built from source")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries and the operator image once, before tests run, outside any
    per-test timeout."""
    if session.config.option.collectonly:
        return
    if not any(HERE in Path(item.path).parents for item in session.items):
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    guard = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with guard:
        bin_dir()
        image_ref("operator")
        image_ref("worker-onnxruntime")


@pytest.fixture(scope="session")
def e2e_bin_dir() -> Path:
    """Directory with etcd, kube-apiserver, kube-controller-manager, minio and helm."""
    return bin_dir()


@pytest.fixture(scope="session")
def control_plane(e2e_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Path of an admin kubeconfig for a running control plane (one per test session)."""
    if uses_external_cluster():
        yield Path(os.environ["KUBECONFIG"])
        return
    cp = ControlPlane(e2e_bin_dir, tmp_path_factory.mktemp("control-plane"))
    cp.start()
    try:
        yield cp.kubeconfig_path
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def s3_server(e2e_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running S3 server; ``endpoint_url``, ``access_key``, ``secret_key``, ``region``."""
    server = S3Server(e2e_bin_dir, tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kubectl(control_plane: Path) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="session")
def helm_binary(e2e_bin_dir: Path) -> Path:
    return e2e_bin_dir / "helm"


@pytest.fixture(scope="session")
def helm(helm_binary: Path, control_plane: Path, helm_home: Path) -> Helm:
    """helm against the e2e cluster (needs the control plane)."""
    return Helm(helm_binary, control_plane, helm_home)


@pytest.fixture(scope="session")
def helm_offline(helm_binary: Path, helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm for commands that need no cluster (version, lint, template)."""
    return Helm(helm_binary, tmp_path_factory.mktemp("no-cluster") / "kubeconfig", helm_home)
