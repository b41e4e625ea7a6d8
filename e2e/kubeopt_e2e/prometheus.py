"""Prometheus from Debian (``/usr/bin/prometheus``) on a free loopback port, for e2e tests.

``PrometheusServer(work_dir, scrape={"kubeopt": ["127.0.0.1:8080"]}, rule_files=[...])``
writes a config with a 1 s scrape and evaluation interval, starts the server with its TSDB
under ``work_dir`` and waits for ``/-/ready``; ``config=`` gives it a whole configuration instead
(kubeopt_e2e.monitoring: the Prometheus Operator's). ``query`` and ``rules`` call the HTTP API.
Install it with ``e2e/install-debian-tools.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kubeopt_e2e.procs import LOOPBACK, Process, free_port, wait_until

__all__ = ["PrometheusServer", "prometheus_binary"]


def prometheus_binary() -> Path | None:
    """``$KUBEOPT_E2E_PROMETHEUS``, else ``prometheus`` on PATH, else ``/usr/bin/prometheus``."""
    for candidate in (os.environ.get("KUBEOPT_E2E_PROMETHEUS"), shutil.which("prometheus"),
                      "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class PrometheusServer:
    """One Prometheus server; ``url`` once started."""

    def __init__(self, work_dir: Path, scrape: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = (),
                 binary: Path | None = None, interval: str = "1s",
                 config: Mapping[str, Any] | None = None) -> None:
        """``scrape``: static jobs (name: targets); ``config``: a whole configuration (e.g. the Prometheus
        Operator's), written as it is with ``rule_files`` added (``scrape`` and ``interval`` are then unused)."""
        found = binary or prometheus_binary()
        if found is None:
            raise FileNotFoundError("prometheus is not installed: run e2e/install-debian-tools.sh")
        self.binary = found
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.config = work_dir / "prometheus.yml"
        if config is None:
            config = {
                "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
                "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}
                                   for job, targets in scrape.items()],
            }
        self.config.write_text(yaml.safe_dump({
            **config, "rule_files": [*config.get("rule_files", []), *(str(path) for path in rule_files)]}))
        self._process: Process | None = None

    def start(self, timeout: float = 30.0) -> None:
        data = self.work_dir / "data"
        data.mkdir(exist_ok=True)
        self._process = Process("prometheus", [
            str(self.binary), f"--config.file={self.config}", f"--storage.tsdb.path={data}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
        ], self.work_dir / "prometheus.log", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=self.work_dir)
        wait_until("prometheus /-/ready", lambda: self._get("/-/ready").startswith("Prometheus"),
                   process=self._process, timeout=timeout)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as resp:
            return str(resp.read().decode())

    def api(self, path: str, **params: str) -> Any:
        """``data`` of a ``/api/v1`` answer; raises unless its status is success."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(self._get(f"/api/v1/{path}{query}"))
        if body.get("status") != "success":
            raise RuntimeError(f"/api/v1/{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now: ``[{"metric": {...}, "value": [t, "v"]}]``."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise RuntimeError(f"{expr!r} is a {data['resultType']}, not a vector")
        return list(data["result"])

    def rules(self) -> list[dict[str, Any]]:
        """The loaded rule groups, with each rule's health and, for alerts, state."""
        return list(self.api("rules")["groups"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.work_dir / "prometheus.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
