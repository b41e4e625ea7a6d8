"""A fake kubelet: binds pods to one Node and runs their containers as local processes.

The e2e control plane has no kubelet and no scheduler. This helper plays both, for the pods
it can place: it registers a Node, binds each pending pod that fits (its nodeSelector matches
the node's labels and it asks only for resources the node has; a GPU pod does not fit), runs
each container's command as a local process and writes the pod's status back through the
``pods/status`` subresource as a kubelet would, so the Job controller sees real pods finish.

What a container sees is resolved from the API: ``env`` (values and ``secretKeyRef``),
``envFrom`` Secrets and ConfigMaps, and ``emptyDir`` volumes as temporary directories. Paths
inside the container (mount paths and the termination message path) are rewritten in the
command, the arguments and env values to the directories standing in for them, and the
executable is mapped (``executables={"kubeopt": [".venv/bin/kubeopt"]}``). When the process
exits, the termination message file's contents (or, with ``FallbackToLogsOnError`` and a
failure, the log's tail) become ``state.terminated.message``, as on a real node.
A namespace can be held (``hold``, ``release``): its new pods then stay Pending, unbound.

A pod whose image is in ``images`` (pod image -> local image reference, e.g. the e2e worker
image -> the CPU worker image ``make images`` built) runs in that image instead, as a container
runtime would run it (``kubeopt_e2e.images.Container``): the pod's command and args unrewritten,
resolved on the image's PATH; the image's env under the pod's (no PYTHONPATH of the test
process); emptyDir volumes and the termination message file mounted at the pod's own paths; the
pod's user and group; a read-only root when the container's securityContext asks for it.

Memory limits are real where the machine has a writable cgroup v1 memory controller (root):
the container runs in its own memory cgroup capped at ``resources.limits.memory``, the kernel
kills it when it goes over, and the status says ``OOMKilled`` with exit code 137, as a
container runtime reports it. Elsewhere limits are not enforced (``enforces_memory_limits``).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import subprocess
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubeopt_e2e.images import Container, Mount, mounted_image, unmount_image

__all__ = ["FakeKubelet", "PodRun", "enforces_memory_limits", "memory_bytes"]

log = logging.getLogger(__name__)
MESSAGE_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")
QUANTITY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9,
                     "T": 10**12}


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("64Mi", "1G", "1048576") in bytes."""
    for suffix in sorted(QUANTITY_SUFFIXES, key=len, reverse=True):
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * QUANTITY_SUFFIXES[suffix])
    return int(float(quantity))


def enforces_memory_limits() -> bool:
    """Whether this machine lets the fake kubelet cap a container's memory (cgroup v1, writable)."""
    return (MEMORY_CGROUPS / "memory.limit_in_bytes").exists() and os.access(MEMORY_CGROUPS, os.W_OK)


class MemoryCgroup:
    """One container's memory cgroup: a cap, the processes' entry point, and whether the kernel
    OOM-killed anything in it."""

    def __init__(self, name: str, limit: int) -> None:
        self.path = MEMORY_CGROUPS / "kubeopt-e2e" / name
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        swap = self.path / "memory.memsw.limit_in_bytes"
        if swap.exists():  # no swapping out of the limit: over it is over it, as on a node without swap
            swap.write_text(str(limit))

    def wrap(self, argv: list[str]) -> list[str]:
        """argv started inside the cgroup: the shell enters it, then execs the command in its place."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *argv]

    def oom_killed(self) -> bool:
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1]) > 0
        return False

    def remove(self) -> None:
        for path in (self.path, self.path.parent):  # the parent only once no container uses it
            try:
                path.rmdir()
            except OSError as error:  # still in use, or emptying: the kernel frees it after the last task
                log.debug("kept %s: %s", path, error)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _data(response: Any) -> Any:
    return json.loads(response.data)


@dataclass
class PodRun:
    """One pod this kubelet ran: where, with what, and how it ended."""

    namespace: str
    name: str
    argv: list[str] = field(default_factory=list)
    exit_code: int | None = None
    message: str = ""
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None


class FakeKubelet:
    """Run the pods of ``namespaces`` (all when None) that fit a Node named ``node_name``."""

    def __init__(
        self,
        kubeconfig: Path,
        work_dir: Path,
        *,
        executables: Mapping[str, Sequence[str]] | None = None,
        namespaces: Collection[str] | None = None,
        node_name: str = "kubeopt-e2e-node",
        node_labels: Mapping[str, str] | None = None,
        allocatable: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        poll_interval: float = 0.3,
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.executables = {k: list(v) for k, v in (executables or {}).items()}
        self.images = dict(images or {})
        self.namespaces = set(namespaces) if namespaces is not None else None
        self.node_name = node_name
        self.node_labels = {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux",
                            **(node_labels or {})}
        self.allocatable = dict(allocatable or {"cpu": "2", "memory": "8Gi", "pods": "110",
                                                "ephemeral-storage": "20Gi"})
        self.extra_env = dict(extra_env or {})
        self.poll_interval = poll_interval
        self.runs: dict[str, PodRun] = {}
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        new_client = cast(Any, config.new_client_from_config)
        self._api = client.CoreV1Api(new_client(config_file=str(kubeconfig)))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKubelet:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._thread = threading.Thread(target=self._loop, name=f"kubelet-{self.node_name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait()

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def hold(self, namespace: str) -> None:
        """Leave new pods of ``namespace`` Pending (not bound, not run) until ``release``: as
        on a busy node, their Jobs count them active while nothing runs."""
        with self._lock:
            self._held.add(namespace)

    def release(self, namespace: str) -> None:
        with self._lock:
            self._held.discard(namespace)

    def finished(self) -> list[PodRun]:
        with self._lock:
            return [r for r in self.runs.values() if r.exit_code is not None]

    # -- node ------------------------------------------------------------------------------

    def _register_node(self) -> None:
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.node_labels}}
        try:
            self._api.create_node(cast(Any, body))
        except ApiException as error:
            if error.status != 409:
                raise
        status = {"status": {
            "capacity": self.allocatable, "allocatable": self.allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "fake kubelet is posting ready status",
                            "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.node_name}],
        }}
        self._api.patch_node_status(self.node_name, status)

    def _fits(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec", {})
        if spec.get("nodeName"):
            return spec["nodeName"] == self.node_name
        selector = spec.get("nodeSelector") or {}
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            return False
        for container in spec.get("containers", []):
            limits = (container.get("resources") or {}).get("limits") or {}
            requests = (container.get("resources") or {}).get("requests") or {}
            for name in {**limits, **requests}:
                if name not in self.allocatable:
                    return False
        return True

    # -- the loop --------------------------------------------------------------------------

    def _pods(self) -> list[dict[str, Any]]:
        if self.namespaces is None:
            return list(_data(self._api.list_pod_for_all_namespaces(_preload_content=False))["items"])
        pods: list[dict[str, Any]] = []
        for namespace in sorted(self.namespaces):
            pods += _data(self._api.list_namespaced_pod(namespace, _preload_content=False))["items"]
        return pods

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for pod in self._pods():
                    self._visit(pod)
            except Exception:  # keep serving; the next round retries
                log.exception("fake kubelet round failed")
            self._stop.wait(self.poll_interval)

    def _visit(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            self._kill_and_remove(pod)
            return
        with self._lock:
            known = uid in self.runs
            held = meta["namespace"] in self._held
        if known or held or pod.get("status", {}).get("phase") in ("Succeeded", "Failed") or not self._fits(pod):
            return
        if not pod["spec"].get("nodeName"):
            self._bind(meta["namespace"], meta["name"])
        run = PodRun(namespace=meta["namespace"], name=meta["name"])
        with self._lock:
            self.runs[uid] = run
        threading.Thread(target=self._run_pod, args=(pod, run), name=f"pod-{meta['name']}", daemon=True).start()

    def _bind(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}}
        self._api.create_namespaced_binding(namespace, cast(Any, body), _preload_content=False)

    def _kill_and_remove(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        if pod.get("spec", {}).get("nodeName") != self.node_name:
            return
        with self._lock:
            run = self.runs.get(meta["uid"])
        if run is not None and run.process is not None and run.process.poll() is None:
            run.process.kill()
        try:
            self._api.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0,
                                            _preload_content=False)
        except ApiException as error:
            if error.status != 404:
                raise

    # -- running a pod ---------------------------------------------------------------------

    def _run_pod(self, pod: dict[str, Any], run: PodRun) -> None:
        try:
            self._execute(pod, run)
        except Exception as error:  # report a kubelet-side failure on the pod, as a kubelet would
            log.exception("pod %s/%s could not run", run.namespace, run.name)
            run.exit_code = 128
            run.message = f"fake kubelet: {type(error).__name__}: {error}"
            self._write_status(run, "Failed", self._terminated(pod, 128, "StartError", run.message))

    def _execute(self, pod: dict[str, Any], run: PodRun) -> None:
        spec = pod["spec"]
        pod_dir = self.work_dir / f"{run.namespace}_{run.name}"
        volumes = {}
        for volume in spec.get("volumes") or []:
            if "emptyDir" in volume:
                path = pod_dir / "volumes" / volume["name"]
                path.mkdir(parents=True, exist_ok=True)
                volumes[volume["name"]] = path
        container = spec["containers"][0]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts") or []
                  if m["name"] in volumes}
        termination = pod_dir / "termination-log"
        termination.write_text("")
        termination_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        paths = {termination_path: termination, **mounts}
        image = self.images.get(container.get("image", ""))
        if image is not None:
            argv, env = self._in_image(image, spec, container, pod_dir, run.namespace, mounts, termination)
        else:
            argv = [_rewrite(a, paths) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
            if argv and argv[0] in self.executables:
                argv = [*self.executables[argv[0]], *argv[1:]]
            env = self._environment(run.namespace, container, paths)
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        cgroup = MemoryCgroup(f"{run.namespace}_{run.name}", memory_bytes(limit)) \
            if limit and enforces_memory_limits() else None
        run.argv, run.log = argv, pod_dir / "container.log"
        started = _now()
        try:
            with open(run.log, "wb") as output:
                run.process = subprocess.Popen(cgroup.wrap(argv) if cgroup else argv, stdin=subprocess.DEVNULL,
                                               stdout=output, stderr=subprocess.STDOUT, env=env, cwd=pod_dir)
                self._write_status(run, "Running", {"name": container["name"], "ready": True, "restartCount": 0,
                                                    "image": container.get("image", ""), "imageID": "",
                                                    "started": True, "state": {"running": {"startedAt": started}}})
                code = run.process.wait()
            oom_killed = cgroup is not None and cgroup.oom_killed()
        finally:
            if cgroup is not None:
                cgroup.remove()
            if image is not None:
                unmount_image(image)
        if code < 0:  # killed by a signal: runtimes report 128 + the signal's number
            code = 128 - code
        message = termination.read_text(errors="replace")[:MESSAGE_LIMIT]
        if not message.strip() and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = run.log.read_bytes()[-2048:].decode(errors="replace")
        run.message, run.exit_code = message, code
        if self._stop.is_set():
            return
        reason = "OOMKilled" if oom_killed else "Completed" if code == 0 else "Error"
        state = self._terminated(pod, code, reason, message, started)
        self._write_status(run, "Succeeded" if code == 0 else "Failed", state)

    def _terminated(self, pod: Mapping[str, Any], code: int, reason: str, message: str,
                    started: str | None = None) -> dict[str, Any]:
        container = pod["spec"]["containers"][0]
        terminated = {"exitCode": code, "reason": reason, "startedAt": started or _now(), "finishedAt": _now()}
        if message:
            terminated["message"] = message
        return {"name": container["name"], "ready": False, "restartCount": 0, "image": container.get("image", ""),
                "imageID": "", "started": False, "state": {"terminated": terminated}}

    def _in_image(self, image: str, spec: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path,
                  namespace: str, mounts: Mapping[str, Path], termination: Path) -> tuple[list[str], dict[str, str]]:
        """(host argv, host env) that run ``container`` from ``image`` (mounted until the pod ends)."""
        for directory in mounts.values():
            directory.chmod(0o777)  # an emptyDir is world-writable
        termination.chmod(0o666)
        security = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        user = f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}" \
            if "runAsUser" in security else None
        env = {**self._environment(namespace, container, {}, host=False), **self.extra_env}
        volumes = [Mount(path, inside) for inside, path in mounts.items()]
        volumes.append(Mount(termination, container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH))
        started = Container(image=image, command=container.get("command") or (), args=container.get("args") or (),
                            env=env, mounts=volumes, user=user,
                            read_only_root=bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem")))
        root = mounted_image(image)
        host_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}
        return started.argv(root, pod_dir / "container"), host_env

    def _environment(self, namespace: str, container: Mapping[str, Any], paths: Mapping[str, Path],
                     host: bool = True) -> dict[str, str]:
        """The container's env; with ``host``, on top of this process's PATH and PYTHONPATH (a local
        process), else only what the pod says (the image supplies the rest)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **_python_path(),
               **self.extra_env} if host else {}
        if "/tmp" in paths:
            env["TMPDIR"] = str(paths["/tmp"])
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                data = self._secret(namespace, source["secretRef"]["name"])
            elif "configMapRef" in source:
                data = self._config_map(namespace, source["configMapRef"]["name"])
            else:
                continue
            env.update({prefix + k: v for k, v in data.items()})
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = _rewrite(str(item["value"]), paths)
            elif "secretKeyRef" in (item.get("valueFrom") or {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self._secret(namespace, ref["name"])[ref["key"]]
        return env

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = _data(self._api.read_namespaced_secret(name, namespace, _preload_content=False))
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def _config_map(self, namespace: str, name: str) -> dict[str, str]:
        return dict(_data(self._api.read_namespaced_config_map(name, namespace, _preload_content=False))
                    .get("data") or {})

    def _write_status(self, run: PodRun, phase: str, container_status: dict[str, Any]) -> None:
        running = phase == "Running"
        now = _now()
        ready = "True" if running else "False"
        status = {
            "phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": [container_status],
        }
        try:
            self._api.patch_namespaced_pod_status(run.name, run.namespace, {"status": status},
                                                  _preload_content=False)
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile
                raise


def _rewrite(text: str, paths: Mapping[str, Path]) -> str:
    """A container path in ``text`` replaced by the local directory standing in for it."""
    for inside in sorted(paths, key=len, reverse=True):
        if text == inside:
            return str(paths[inside])
        if text.startswith(inside.rstrip("/") + "/"):
            return str(paths[inside]) + text[len(inside.rstrip("/")):]
    return text


def _python_path() -> dict[str, str]:
    """The test process's PYTHONPATH, so a worker runs the checkout under test (a git worktree)
    rather than whatever the venv's editable install points at."""
    value = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": value} if value else {}
