"""The metrics port: /metrics from the operator's own registry, /healthz and /readyz.

/healthz answers 200 while ``health`` reports no problem (liveness.Heartbeat: kopf's loop and its
handler threads keep making progress) and 503 with the problem otherwise, so the kubelet restarts
an operator that stopped reconciling; /readyz answers 200 only once kopf reports the operator
ready (indexes filled, start-up handlers done) and while it is healthy, so a rolling update waits
for a working operator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def _healthy() -> str | None:
    return None


def _handler(registry: CollectorRegistry, ready: threading.Event,
             health: Callable[[], str | None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                problem = health()
                self._reply(503 if problem else 200, f"{problem or 'ok'}\n".encode(), "text/plain")
            elif path == "/readyz":
                problem = None if ready.is_set() else "starting"
                problem = problem or health()
                self._reply(503 if problem else 200, f"{problem or 'ok'}\n".encode(), "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    return Handler


def serve(port: int, registry: CollectorRegistry, ready: threading.Event, host: str = "0.0.0.0",
          health: Callable[[], str | None] = _healthy) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``shutdown()`` stops it). ``health``
    returns None while healthy, else the problem that /healthz and /readyz report."""
    server = ThreadingHTTPServer((host, port), _handler(registry, ready, health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
