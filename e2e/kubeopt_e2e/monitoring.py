"""Prometheus configured by the Prometheus Operator's own config generator, for e2e tests.

``e2e/promop-config`` is a small Go program on the Prometheus Operator's module (pinned in its
go.mod): given a Prometheus resource and the ServiceMonitors, Namespaces, Secrets and
ConfigMaps it would read, it runs the operator's ServiceMonitor selection and
``ConfigGenerator.GenerateServerConfiguration`` and prints the ``prometheus.yml`` the operator
would write. So the scrape jobs, their ``kubernetes_sd_configs``, relabelling and
``honor_labels`` are the operator's, not a translation of ours.

That configuration assumes Prometheus runs in a pod: its ``kubernetes_sd_configs`` name no API
server and no credentials, because Prometheus then takes them from its ServiceAccount
(KUBERNETES_SERVICE_HOST and the token and CA under /var/run/secrets/kubernetes.io/serviceaccount).
``in_cluster_connection`` adds exactly those three things, and nothing else, so that a Prometheus
on this host discovers the same targets through the e2e API server as a ServiceAccount with a
bound token. ``host_address`` is the address an EndpointSlice can name for a process on this host
(the API server refuses loopback endpoint addresses).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BUILD", "config_generator", "generate_config", "host_address", "in_cluster_connection"]

BUILD = Path(__file__).resolve().parents[1] / "promop-config" / "build.sh"


def config_generator(timeout: float = 1800) -> Path | None:
    """The built ``promop-config`` (``e2e/promop-config/build.sh``, cached by content); None without Go."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        return None
    built = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=timeout, check=False)
    if built.returncode != 0:
        raise RuntimeError(f"{BUILD} failed with exit code {built.returncode}:\n{built.stderr}")
    return Path(built.stdout.strip().splitlines()[-1])


def generate_config(generator: Path, objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``prometheus.yml`` the Prometheus Operator writes for the one Prometheus in ``objects``."""
    run = subprocess.run([str(generator), "-"], input=yaml.safe_dump_all([dict(o) for o in objects]),
                         capture_output=True, text=True, timeout=60, check=False)
    if run.returncode != 0:
        raise AssertionError(f"promop-config exited {run.returncode}:\n{run.stderr}")
    config: dict[str, Any] = yaml.safe_load(run.stdout)
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
