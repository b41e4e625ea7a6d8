"""Prometheus configured by the Prometheus Operator's own config generator, for e2e tests.

``e2e/promop-config`` is a small Go program on the Prometheus Operator's module (pinned in its
go.mod): given a Prometheus resource and the ServiceMonitors, Namespaces, Secrets and
ConfigMaps it would read, it runs the operator's ServiceMonitor selection and
``ConfigGenerator.GenerateServerConfiguration`` and prints the ``prometheus.yml`` the operator
would write. So the scrape jobs, their ``kubernetes_sd_configs``, relabelling and
``honor_labels`` are the operator's, not a translation of ours. Its ``$(SHARD)`` and
``$(POD_NAME)`` are expanded as the operator's config reloader expands them in the pod.

That configuration assumes Prometheus runs in a pod: its ``kubernetes_sd_configs`` name no API
server and no credentials, because Prometheus then takes them from its ServiceAccount
(KUBERNETES_SERVICE_HOST and the token and CA under /var/run/secrets/kubernetes.io/serviceaccount).
``in_cluster_connection`` adds exactly those three things, and nothing else, so that a Prometheus
on this host discovers the same targets through the e2e API server as a ServiceAccount with a
bound token.

Debian's Prometheus (the e2e one) is built without Kubernetes service discovery: it refuses
``kubernetes_sd_configs`` ("field kubernetes_sd_configs not found in type config.ScrapeConfig").
``kubernetes_discovery`` runs ``e2e/promop-discover``, Prometheus's own discovery/kubernetes
code (v0.305.0, the version the generator's module requires) on the connected configuration, which
writes every discovered target with all its ``__meta_kubernetes_*`` labels to a file_sd file per
job; ``with_file_sd`` points each job at its file instead. The targets Prometheus then relabels
are those its Kubernetes discovery finds; relabelling and ``honor_labels`` are Prometheus's own.
``host_address`` is the address an EndpointSlice can name for a process on this host
(the API server refuses loopback endpoint addresses).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubeopt_e2e.procs import Process, wait_until

__all__ = ["BUILD", "DISCOVERY_BUILD", "POD_ENV", "config_generator", "discovery_binary", "generate_config",
           "host_address", "in_cluster_connection", "kubernetes_discovery", "with_file_sd"]

E2E = Path(__file__).resolve().parents[1]
BUILD = E2E / "promop-config" / "build.sh"
DISCOVERY_BUILD = E2E / "promop-discover" / "build.sh"


def _built(script: Path, timeout: float) -> Path | None:
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        return None
    built = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=timeout, check=False)
    if built.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {built.returncode}:\n{built.stderr}")
    return Path(built.stdout.strip().splitlines()[-1])


def config_generator(timeout: float = 1800) -> Path | None:
    """The built ``promop-config`` (``e2e/promop-config/build.sh``, cached by content); None without Go."""
    return _built(BUILD, timeout)


def discovery_binary(timeout: float = 1800) -> Path | None:
    """The built ``promop-discover`` (``e2e/promop-discover/build.sh``, cached by content); None without Go."""
    return _built(DISCOVERY_BUILD, timeout)


#: The environment prometheus-config-reloader substitutes into the operator's configuration in
#: the first (only) Prometheus pod of a StatefulSet: the shard number and the pod's name.
POD_ENV = {"SHARD": "0", "POD_NAME": "prometheus-e2e-0"}


def generate_config(generator: Path, objects: Iterable[Mapping[str, Any]],
                    env: Mapping[str, str] = POD_ENV) -> dict[str, Any]:
    """The ``prometheus.yml`` the Prometheus Operator writes for the one Prometheus in ``objects``,
    with its ``$(VAR)`` references expanded from ``env``, as prometheus-config-reloader expands them
    before Prometheus reads the file (the sharding rule keeps only the targets of ``$(SHARD)``)."""
    run = subprocess.run([str(generator), "-"], input=yaml.safe_dump_all([dict(o) for o in objects]),
                         capture_output=True, text=True, timeout=60, check=False)
    if run.returncode != 0:
        raise AssertionError(f"promop-config exited {run.returncode}:\n{run.stderr}")

    def expand(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise AssertionError(f"the generated configuration refers to $({match.group(1)}), which env lacks")
        return env[match.group(1)]

    config: dict[str, Any] = yaml.safe_load(re.sub(r"\$\(([a-zA-Z_0-9]+)\)", expand, run.stdout))
    return config


def in_cluster_connection(config: Mapping[str, Any], api_server: str, ca_file: Path,
                          token_file: Path) -> dict[str, Any]:
    """``config`` with the API server URL, its CA and a ServiceAccount token on every
    ``kubernetes_sd_configs`` entry: what Prometheus reads from its pod when the entry names none."""
    connected = copy.deepcopy(dict(config))
    for job in connected.get("scrape_configs") or []:
        for sd in job.get("kubernetes_sd_configs") or []:
            for key in ("api_server", "tls_config", "authorization", "bearer_token_file", "kubeconfig_file"):
                if key in sd:
                    raise AssertionError(f"job {job['job_name']}: the generated kubernetes_sd_configs already "
                                         f"sets {key}; in_cluster_connection would override it")
            sd["api_server"] = api_server
            sd["tls_config"] = {"ca_file": str(ca_file)}
            sd["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return connected


def _target_file(directory: Path, job: str) -> Path:
    """The file ``promop-discover`` writes a job's targets to."""
    return directory / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', job)}.json"


@contextmanager
def kubernetes_discovery(discoverer: Path, config: Mapping[str, Any], work_dir: Path) -> Iterator[dict[str, Path]]:
    """Prometheus's Kubernetes discovery for every job of ``config`` (with its connection), running;
    yields each job's file_sd target file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "discovery.yml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    targets = work_dir / "targets"
    targets.mkdir(exist_ok=True)
    files = {job["job_name"]: _target_file(targets, job["job_name"])
             for job in config.get("scrape_configs") or [] if job.get("kubernetes_sd_configs")}
    process = Process("promop-discover", [str(discoverer), str(config_file), str(targets)],
                      work_dir / "discovery.log", env={})
    try:
        wait_until("the discovery's target files", lambda: all(f.exists() for f in files.values()),
                   process=process, timeout=30)
        yield files
    finally:
        process.stop()


def with_file_sd(config: Mapping[str, Any], files: Mapping[str, Path]) -> dict[str, Any]:
    """``config`` with each job's ``kubernetes_sd_configs`` replaced by its discovered target file."""
    served = copy.deepcopy(dict(config))
    for job in served.get("scrape_configs") or []:
        if job.pop("kubernetes_sd_configs", None):
            job["file_sd_configs"] = [{"files": [str(files[job["job_name"]])], "refresh_interval": "5s"}]
    return served


def host_address() -> str | None:
    """This host's first global-scope IPv4 address (``ip -4 addr``), or None."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    shown = subprocess.run([ip, "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                           check=False).stdout
    for line in shown.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None
