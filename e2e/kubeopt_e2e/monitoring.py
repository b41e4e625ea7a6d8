"""A Prometheus scrape job made from the chart's rendered ServiceMonitor, as the Prometheus Operator makes it.

The Prometheus Operator turns each ServiceMonitor endpoint into a scrape job whose targets
carry the Service's ``namespace``, ``service``, ``pod``, ``container`` and ``endpoint`` as
target labels, and copies the endpoint's ``honorLabels``, ``interval`` and ``path``. Here the
target is the operator's loopback address, so Kubernetes service discovery is replaced by a
static target with the same target labels: what ``honor_labels`` decides (whose ``namespace``
wins when the scraped series has its own) is exactly what Prometheus does under the Operator.
The Operator's own generator (its Go module) is not built here (not attempted yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["scrape_config"]


def scrape_config(service_monitor: Mapping[str, Any], target: str, service: str, pod: str,
                  honor_labels: bool | None = None) -> dict[str, Any]:
    """The scrape job of the ServiceMonitor's first endpoint, scraping ``target`` (host:port).

    ``honor_labels`` overrides the endpoint's own (for a control run); None keeps it."""
    meta = service_monitor["metadata"]
    endpoint = service_monitor["spec"]["endpoints"][0]
    honor = bool(endpoint.get("honorLabels", False)) if honor_labels is None else honor_labels
    job = f"serviceMonitor/{meta['namespace']}/{meta['name']}/0"
    return {
        "job_name": job if honor_labels is None else f"{job}-honorLabels-{str(honor).lower()}",
        "honor_labels": honor,
        "scrape_interval": endpoint.get("interval", "30s"),
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [{"targets": [target], "labels": {
            "namespace": meta["namespace"], "service": service, "pod": pod, "container": "operator",
            "endpoint": str(endpoint.get("port", "")),
        }}],
    }
