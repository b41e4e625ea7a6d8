"""The operator under test: ``kubeopt operator`` as a process, with the chart's RBAC only.

``service_account_kubeconfig`` renders the Helm chart, applies its ServiceAccount and RBAC
objects (nothing else), asks the TokenRequest API for a token and writes a kubeconfig with
it, so the operator can do exactly what the chart grants. ``admission_policies`` applies the
chart's ValidatingAdmissionPolicies and bindings and waits until the API server enforces them.
``token_kubeconfig`` gives any ServiceAccount its own kubeconfig (a distinct identity).
``OperatorProcess`` starts, stops and restarts the operator and knows its metrics port. It runs
the operator image built from images/operator (``kubeopt_e2e.images``) as the chart's Deployment
runs it: the Deployment's command, env, user, read-only root and /tmp emptyDir, rendered by
``helm template``; the service account token mounted where a pod has it
(/var/run/secrets/kubernetes.io/serviceaccount); kubernetes.default.svc and
KUBERNETES_SERVICE_HOST/PORT naming the API server's stand-in Service (``kubeopt_e2e.service``).
So the operator logs in as in a cluster, with no kubeconfig.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.images import Container, Mount, image_ref, mounted_image, unmount_image
from kubeopt_e2e.procs import LOOPBACK, Process, free_port, log_tail, wait_until
from kubeopt_e2e.service import KubernetesService
from kubeopt_e2e.tools import binary

__all__ = [
    "E2E_VALUES",
    "OperatorProcess",
    "admission_policies",
    "chart_documents",
    "rbac_documents",
    "service_account_kubeconfig",
    "token_kubeconfig",
    "worker_images",
]

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
#: The worker image name e2e Jobs get; the fake kubelet runs the local worker for it.
E2E_WORKER_IMAGE = "kubeopt-worker:e2e"
#: Chart values of the e2e install: the chart's worker image is the e2e one for every backend (so
#: admission allows it and the operator's Deployment names no other).
E2E_VALUES = (f"workerImages.default={E2E_WORKER_IMAGE}", "workerImages.tensorrt=", "workerImages.tfTrt=",
              "workerImages.onnxruntime=", "workerImages.torchCompile=")
CHART = Path(__file__).resolve().parents[2] / "charts" / "kubeopt"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def chart_documents(helm: Helm, chart: Path, release: str, namespace: str, kinds: set[str],
                    values: tuple[str, ...] = E2E_VALUES) -> list[dict[str, Any]]:
    """The chart's objects of ``kinds``, as ``helm template`` renders them with ``--set values``."""
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = helm("template", release, str(chart), "--namespace", namespace, *sets).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") in kinds]


def rbac_documents(helm: Helm, chart: Path, release: str, namespace: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC objects, as ``helm template`` renders them."""
    return chart_documents(helm, chart, release, namespace, RBAC_KINDS)


def token_kubeconfig(kubectl: Kubectl, account: str, namespace: str, out: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/account`` (a bound token)."""
    token = kubectl("create", "token", account, "-n", namespace, "--duration", "2h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": account}}],
        "current-context": "e2e",
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def service_account_kubeconfig(kubectl: Kubectl, helm: Helm, chart: Path, out: Path,
                               release: str = "kubeopt", namespace: str = "kubeopt-system") -> tuple[Path, str]:
    """Apply the chart's RBAC, return (kubeconfig with a bound token, service account name)."""
    kubectl("create", "namespace", namespace, check=False)
    documents = rbac_documents(helm, chart, release, namespace)
    kubectl.apply(yaml.safe_dump_all(documents))
    account = next(d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount")
    return token_kubeconfig(kubectl, account, namespace, out), f"system:serviceaccount:{namespace}:{account}"


@contextmanager
def admission_policies(kubectl: Kubectl, helm: Helm, chart: Path, release: str = "kubeopt",
                       namespace: str = "kubeopt-system", timeout: float = 60.0) -> Iterator[list[dict[str, Any]]]:
    """Apply the chart's admission policies and bindings; delete them on exit.

    The API server loads policies through an informer, so this waits until each policy refuses
    a probe in the ``default`` namespace (which did not opt in), tried with a server dry run:
    a ModelOptimization as admin, and a Job as the operator (impersonated, with system:masters
    so that RBAC is not what refuses it)."""
    documents = chart_documents(helm, chart, release, namespace, POLICY_KINDS)
    operator = next(f"system:serviceaccount:{namespace}:{d['metadata']['name']}"
                    for d in chart_documents(helm, chart, release, namespace, {"ServiceAccount"}))
    kubectl.apply(yaml.safe_dump_all(documents))
    try:
        deadline = time.monotonic() + timeout
        while not (_refused(kubectl, PROBE_OPTIMIZATION) and _refused(kubectl, PROBE_JOB, f"--as={operator}",
                                                                      "--as-group=system:masters")):
            if time.monotonic() > deadline:
                raise AssertionError(f"admission policies not enforced after {timeout:.0f}s")
            time.sleep(0.5)
        yield documents
    finally:
        for doc in reversed(documents):
            kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False)


PROBE_OPTIMIZATION = {
    "apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
    "metadata": {"name": "admission-probe", "namespace": "default"},
    "spec": {"model": {"uri": "s3://m/m.onnx", "format": "onnx", "inputs": [{"name": "x", "shape": [-1, 4]}]},
             "targets": [{"name": "ort", "backend": "onnxruntime"}], "output": {"uri": "s3://a/p"}},
}
PROBE_JOB = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "admission-probe", "namespace": "default"},
    "spec": {"template": {"spec": {"restartPolicy": "Never",
                                   "containers": [{"name": "probe", "image": E2E_WORKER_IMAGE}]}}},
}


def _refused(kubectl: Kubectl, probe: dict[str, Any], *args: str) -> bool:
    result = kubectl("create", "--dry-run=server", "-f", "-", *args, input=yaml.safe_dump(probe), check=False)
    return result.returncode != 0 and "has not opted in" in result.stderr


class OperatorProcess:
    """The operator image run as the chart's Deployment runs it, as the ServiceAccount whose token
    ``kubeconfig`` holds; its log in ``log``. ``env`` is set over the Deployment's env (peering,
    worker images); ``image`` is a local image reference (default: images/operator, built if needed)."""

    def __init__(self, kubeconfig: Path, log: Path, env: Mapping[str, str] | None = None,
                 image: str | None = None, values: tuple[str, ...] = E2E_VALUES, module: str | None = None) -> None:
        """``module``: run ``python -m <module> operator ...`` from this checkout instead of the image
        (kubeopt_e2e.stall wraps the CLI to block the operator's loop; it is not in the image)."""
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = dict(env or {})
        self.image = image
        self.values = values
        self.module = module
        self.metrics_port = free_port()
        self._process: Process | None = None
        self._mounted: str | None = None
        self._service: KubernetesService | None = None

    @property
    def pid(self) -> int:
        """The running operator's process id (to read its memory in /proc)."""
        if self._process is None:
            raise RuntimeError("operator not running")
        return int(self._process.popen.pid)

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}"

    def container(self, work: Path, service: KubernetesService) -> Container:
        """The operator's container as the chart's Deployment defines it, for this test's cluster."""
        image = self.image or image_ref("operator")
        pod = deployment_pod((*self.values, f"metricsPort={self.metrics_port}"))
        spec = pod["containers"][0]
        env: dict[str, str] = {}
        for item in spec.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = "kubeopt-e2e-operator"
            else:
                raise AssertionError(f"e2e does not resolve the chart's env entry {item}")
        # A kubelet sets the ClusterIP (10.0.0.1, which the serving certificate names); the stand-in's
        # loopback address is not in the certificate, its name is.
        env.update({"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc", "KUBERNETES_SERVICE_PORT": str(service.port)})
        env.update(self.env)
        mounts = [Mount(_service_account_dir(self.kubeconfig, work / "serviceaccount"), SERVICE_ACCOUNT_DIR,
                        read_only=True), Mount(service.hosts_file(work / "hosts"), "/etc/hosts")]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in spec.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" not in volume:
                raise AssertionError(f"e2e mounts only emptyDir volumes for the operator, not {volume}")
            directory = work / "volumes" / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o1777)  # an emptyDir is world-writable
            mounts.append(Mount(directory, mount["mountPath"], read_only=bool(mount.get("readOnly"))))
        security = pod.get("securityContext", {})
        return Container(
            image=image, command=spec.get("command", ()), args=spec.get("args", ()), env=env, mounts=mounts,
            user=f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"
            if "runAsUser" in security else None,
            read_only_root=bool(spec.get("securityContext", {}).get("readOnlyRootFilesystem")))

    def start(self, timeout: float = 60.0) -> None:
        if self._process is not None:
            raise RuntimeError("operator already running")
        if self.module is not None:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                   "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.log.parent), **self.env}
            if os.environ.get("PYTHONPATH"):  # run the checkout under test (a git worktree), not the venv's
                env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
            self._process = Process(
                "operator", [sys.executable, "-m", self.module, "operator", "--metrics-port", str(self.metrics_port)],
                self.log, env=env)
            wait_until("operator /readyz", self._ready, process=self._process, timeout=timeout)
            return
        work = Path(tempfile.mkdtemp(prefix="container-", dir=self.log.parent))
        server = urllib.parse.urlsplit(_kubeconfig_cluster(self.kubeconfig)["server"])
        self._service = KubernetesService((str(server.hostname), int(server.port or 443)))
        container = self.container(work, self._service)
        root = mounted_image(container.image)
        self._mounted = container.image
        host_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}
        self._process = Process("operator", container.argv(root, work), self.log, env=host_env)
        wait_until("operator /readyz", self._ready, process=self._process, timeout=timeout)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def running(self) -> bool:
        """Whether the process this object last started is still alive (never restarted by itself)."""
        return self._process is not None and self._process.running()

    def stop(self, grace: float = 20.0) -> None:
        if self._process is not None:
            self._process.stop(grace)
            self._process = None
        if self._mounted is not None:
            unmount_image(self._mounted)
            self._mounted = None
        if self._service is not None:
            self._service.stop()
            self._service = None

    def kill(self) -> None:
        """Stop it the hard way, as a node failure would."""
        if self._process is not None:
            self._process.popen.kill()
            self._process.popen.wait()
        self.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 60) -> str:
        return log_tail(self.log, lines)


E2E_WORKER_ENV = {"KUBEOPT_WORKER_IMAGE": E2E_WORKER_IMAGE}


def worker_images() -> dict[str, str]:
    """FakeKubelet's ``images``: e2e Jobs (every target is an onnxruntime one) run in the CPU worker
    image built from images/worker-onnxruntime."""
    return {E2E_WORKER_IMAGE: image_ref("worker-onnxruntime")}


@functools.cache
def deployment_pod(values: tuple[str, ...]) -> dict[str, Any]:
    """The pod spec of the chart's operator Deployment, rendered with ``values``."""
    with tempfile.TemporaryDirectory(prefix="helm-") as home:
        helm = Helm(binary("helm"), Path(home) / "kubeconfig", Path(home))
        documents = chart_documents(helm, CHART, "kubeopt", "kubeopt-system", {"Deployment"}, values)
    (deployment,) = documents
    return dict(deployment["spec"]["template"]["spec"])


def _kubeconfig_cluster(kubeconfig: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"])


def _service_account_dir(kubeconfig: Path, out: Path) -> Path:
    """token, ca.crt and namespace of a ServiceAccount's token kubeconfig, laid out as a kubelet
    mounts them in a pod."""
    config = yaml.safe_load(kubeconfig.read_text())
    token = config["users"][0]["user"].get("token")
    if not token:
        raise AssertionError(f"{kubeconfig} holds no token: the operator runs as a ServiceAccount")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    out.mkdir(parents=True, exist_ok=True)
    (out / "token").write_text(token)
    (out / "ca.crt").write_bytes(base64.b64decode(_kubeconfig_cluster(kubeconfig)["certificate-authority-data"]))
    (out / "namespace").write_text(claims["kubernetes.io"]["namespace"])
    for path in (out, *out.iterdir()):  # readable by the pod's user, as the kubelet's projection is
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


@contextmanager
def running_operator(kubeconfig: Path, log: Path) -> Iterator[OperatorProcess]:
    """The operator started for e2e and stopped on exit."""
    process = OperatorProcess(kubeconfig, log, env=E2E_WORKER_ENV)
    process.start()
    try:
        yield process
    finally:
        process.stop()
