from __future__ import annotations

import threading
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from kubeopt.controller.metrics import Metrics
from kubeopt.controller.serving import serve


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_health_and_readiness_are_served_on_one_port() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    ready = threading.Event()
    server = serve(0, registry, ready, host="127.0.0.1")
    port = server.server_address[1]
    try:
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz")[0] == 503
        ready.set()
        assert _get(port, "/readyz")[0] == 200
        status, text = _get(port, "/metrics")
        assert status == 200 and "kubeopt_optimizations" in text
        assert _get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()


def test_health_and_readiness_fail_with_the_heartbeats_problem() -> None:
    ready = threading.Event()
    ready.set()
    problem: list[str] = []
    server = serve(0, CollectorRegistry(), ready, host="127.0.0.1", health=lambda: problem[0] if problem else None)
    port = server.server_address[1]
    try:
        healthy = (_get(port, "/healthz"), _get(port, "/readyz"))
        problem.append("kopf's event loop has not run for 200 s")
        stuck = (_get(port, "/healthz"), _get(port, "/readyz"))
    finally:
        server.shutdown()

    assert healthy == ((200, "ok\n"), (200, "ok\n"))
    assert stuck == ((503, "kopf's event loop has not run for 200 s\n"),) * 2
