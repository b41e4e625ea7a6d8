"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Each component is its own process built from source by ``e2e/build.sh``. There is no kubelet
and no scheduler: pods are stored and stay Pending unless a test binds and runs them.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from kubeopt_e2e.certs import CertificateAuthority, KeyPair, service_account_keys
from kubeopt_e2e.procs import LOOPBACK, Process, StartupError, free_port, wait_until

__all__ = ["CONTROLLERS", "ControlPlane", "StartupError"]

_START_ATTEMPTS = 3
_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")  # in start order
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

#: kube-controller-manager controllers the e2e cluster runs.
CONTROLLERS: tuple[str, ...] = (
    "garbage-collector-controller",
    "namespace-controller",
    "job-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    "clusterrole-aggregation-controller",  # the chart's user roles join the built-in view/edit/admin
)


def _kubeconfig(server: str, ca: Path, client: KeyPair, user: str) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert),
                    "client-key-data": b64(client.key),
                },
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }


class ControlPlane:
    """Start and stop etcd, kube-apiserver and kube-controller-manager in ``work_dir``.

    >>> cp = ControlPlane(bin_dir, tmp_path)
    >>> kubeconfig = cp.start()   # admin (system:masters) kubeconfig
    >>> cp.stop()

    Logs: ``work_dir/logs/<component>.log``. If a component does not come up, ``start``
    stops whatever it started and raises :class:`StartupError` with the log's tail.
    """

    def __init__(
        self,
        bin_dir: Path | str,
        work_dir: Path | str,
        *,
        controllers: Sequence[str] = CONTROLLERS,
        extra_apiserver_args: Sequence[str] = (),
        startup_timeout: float = 120.0,
    ) -> None:
        self.bin_dir = Path(bin_dir)
        self.work_dir = Path(work_dir)
        self.controllers = tuple(controllers)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.startup_timeout = startup_timeout
        self.log_dir = self.work_dir / "logs"
        self.pki_dir = self.work_dir / "pki"
        self.kubeconfig_path = self.work_dir / "admin.kubeconfig"
        self.etcd_port = 0
        self.apiserver_port = 0
        self.controller_manager_port = 0
        self._processes: list[Process] = []
        self._ca: CertificateAuthority | None = None
        self._admin: KeyPair | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL, e.g. ``https://127.0.0.1:40123``."""
        return f"https://{LOOPBACK}:{self.apiserver_port}"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    def start(self) -> Path:
        """Start all components, wait until they serve, return the admin kubeconfig's path."""
        if self._processes:
            raise RuntimeError("control plane already started")
        for path in (self.work_dir, self.log_dir, self.pki_dir):
            path.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_etcd()
                self._start_apiserver()
                self._start_controller_manager()
                self._wait_for_service_account("default", "default")
            except StartupError as exc:
                self.stop()
                # A free port can be taken between choosing it and binding it: try new ports.
                if "address already in use" not in str(exc) or attempt == _START_ATTEMPTS:
                    raise
                shutil.rmtree(self.work_dir / "etcd", ignore_errors=True)
            except BaseException:
                self.stop()
                raise
            else:
                break
        return self.kubeconfig_path

    def stop(self) -> None:
        """Terminate every component (newest first) and wait for each to exit."""
        while self._processes:
            self._processes.pop().stop()

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (etcd and the controller manager keep running), as an
        outage of the API server would; :meth:`start_apiserver` brings it back."""
        proc = self._component("kube-apiserver")
        if proc is None:
            raise RuntimeError("kube-apiserver is not running")
        self._processes.remove(proc)
        proc.stop()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port with the same certificates and etcd, so
        kubeconfigs and tokens issued before still work; returns once ``/readyz`` is ok."""
        if self._component("kube-apiserver") is not None:
            raise RuntimeError("kube-apiserver is already running")
        if not self.apiserver_port:
            raise RuntimeError("control plane not started")
        self._start_apiserver(self.apiserver_port)
        # Back in start order, so that stop() still stops the controller manager while the API
        # server it talks to is up (it hangs in shutdown otherwise).
        self._processes.sort(key=lambda p: _COMPONENTS.index(p.name))

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def get(self, path: str, timeout: float = 10.0) -> Any:
        """GET ``path`` from the API server as admin; JSON responses are decoded."""
        req = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, context=self._admin_tls(), timeout=timeout) as resp:
            body = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return json.loads(body)
            return body.decode()

    # -- components -----------------------------------------------------------------------

    def _binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.is_file():
            raise StartupError(f"{name} not found in {self.bin_dir}; run e2e/build.sh")
        return str(path)

    def _spawn(self, name: str, args: Sequence[str]) -> Process:
        proc = Process(name, [self._binary(name), *args], self.log_dir / f"{name}.log", cwd=self.work_dir)
        self._processes.append(proc)
        return proc

    def _make_pki(self) -> None:
        ca = CertificateAuthority(self.pki_dir)
        self._ca = ca
        ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            hosts=[
                LOOPBACK,
                "localhost",
                KUBERNETES_SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            server=True,
        )
        self._admin = ca.issue("admin", common_name="admin", organizations=["system:masters"], client=True)
        ca.issue("controller-manager", common_name="system:kube-controller-manager", client=True)
        ca.issue("front-proxy-client", common_name="front-proxy-client", client=True)
        service_account_keys(self.pki_dir)

    def _start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer_port = free_port()
        client_url = f"http://{LOOPBACK}:{self.etcd_port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                "--name=e2e",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        wait_until("etcd /health", healthy, process=proc, timeout=self.startup_timeout)

    def _start_apiserver(self, port: int | None = None) -> None:
        self.apiserver_port = port or free_port()
        pki = self.pki_dir
        proc = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{LOOPBACK}:{self.etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                # Front proxy (aggregation layer) as kubeadm sets it up; also gives other
                # components the request-header CA they look for in extension-apiserver-authentication.
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,"
                "DefaultTolerationSeconds,ResourceQuota,LimitRanger",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",  # as kubeadm; PodSecurity decides per namespace
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        wait_until(
            "kube-apiserver /readyz", self._apiserver_ready, process=proc, timeout=self.startup_timeout
        )
        kubeconfig = _kubeconfig(self.server, self.ca_cert, self._admin_pair(), "admin")
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig))
        self.kubeconfig_path.chmod(0o600)

    def _start_controller_manager(self) -> None:
        assert self._ca is not None
        pki = self.pki_dir
        kubeconfig = self.work_dir / "controller-manager.kubeconfig"
        pair = KeyPair(cert=pki / "controller-manager.crt", key=pki / "controller-manager.key")
        kubeconfig.write_text(
            yaml.safe_dump(_kubeconfig(self.server, self.ca_cert, pair, "system:kube-controller-manager"))
        )
        kubeconfig.chmod(0o600)
        self.controller_manager_port = free_port()
        proc = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.work_dir / 'controller-manager-certs'}",
                f"--controllers={','.join(self.controllers)}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        url = f"https://{LOOPBACK}:{self.controller_manager_port}/healthz"
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed at start-up

        def healthy() -> bool:
            with urllib.request.urlopen(url, context=insecure, timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until("kube-controller-manager /healthz", healthy, process=proc, timeout=self.startup_timeout)

    def pids(self) -> dict[str, int]:
        """Each running component's process id, by name (the load bench weighs their CPU)."""
        return {p.name: p.popen.pid for p in self._processes}

    # -- helpers --------------------------------------------------------------------------

    def _component(self, name: str) -> Process | None:
        return next((p for p in self._processes if p.name == name), None)

    def _admin_pair(self) -> KeyPair:
        if self._admin is None:
            raise RuntimeError("control plane not started")
        return self._admin

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        pair = self._admin_pair()
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
        return ctx

    def _apiserver_ready(self) -> bool:
        return bool(self.get("/readyz", timeout=3) == "ok")

    def _wait_for_service_account(self, namespace: str, name: str) -> None:
        """The serviceaccount controller made ``name``: controllers run, pods can be admitted."""
        proc = next(p for p in self._processes if p.name == "kube-controller-manager")

        def exists() -> bool:
            self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", timeout=3)
            return True

        wait_until(f"service account {namespace}/{name}", exists, process=proc, timeout=self.startup_timeout)
