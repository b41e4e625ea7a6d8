"""An admission webhook that makes the real API server answer 429 Too Many Requests, on demand.

API Priority and Fairness cannot refuse one client's writes deterministically: a priority
level with no seats still admits a request whenever none of its requests executes (the
queue set's escape for requests wider than its limit), and a serial client never overlaps
itself. So the e2e tests make the refusal with a validating webhook instead: while
``refusing`` is set it denies the requests it matches with status code 429 and
``details.retryAfterSeconds``, which the API server returns to the client as a 429 with a
``Retry-After`` header, exactly what its flow control sends when it sheds load.
"""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeopt_e2e.certs import CertificateAuthority

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Refusal:
    """One request the webhook refused: when, whose, what."""

    at: float
    user: str
    name: str
    operation: str


@dataclass
class _State:
    refusing: threading.Event = field(default_factory=threading.Event)
    refused: list[Refusal] = field(default_factory=list)
    allowed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ThrottlingWebhook:
    """HTTPS on loopback; ``configuration()`` is the ValidatingWebhookConfiguration to apply."""

    def __init__(self, directory: Path, retry_after: int = 2) -> None:
        self.retry_after = retry_after
        self._ca = CertificateAuthority(directory / "ca", common_name="kubeopt-e2e-webhook-ca")
        pair = self._ca.issue("webhook", common_name=LOOPBACK, hosts=[LOOPBACK], server=True)
        self._state = _State()
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pair.cert), str(pair.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="throttling-webhook", daemon=True)

    def __enter__(self) -> ThrottlingWebhook:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self._server.server_address[1]}/"

    def refuse(self, on: bool = True) -> None:
        if on:
            self._state.refusing.set()
        else:
            self._state.refusing.clear()

    def refused(self) -> list[Refusal]:
        with self._state.lock:
            return list(self._state.refused)

    def allowed(self) -> int:
        with self._state.lock:
            return self._state.allowed

    def configuration(self, name: str, namespace: str, user: str, resource: str) -> dict[str, Any]:
        """Match UPDATE (and patch) of ``resource`` by ``user`` in ``namespace`` only."""
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "throttle.e2e.kubeopt.io",
                "clientConfig": {"url": self.url,
                                 "caBundle": base64.b64encode(self._ca.cert.read_bytes()).decode()},
                "rules": [{"apiGroups": ["kubeopt.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
                           "resources": [resource], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "matchConditions": [{"name": "operator-only", "expression": f"request.userInfo.username == '{user}'"}],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }],
        }

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        state, retry_after = self._state, self.retry_after

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                request = review.get("request") or {}
                response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
                with state.lock:
                    if state.refusing.is_set():
                        state.refused.append(Refusal(at=time.monotonic(),
                                                     user=str((request.get("userInfo") or {}).get("username")),
                                                     name=str(request.get("name")),
                                                     operation=str(request.get("operation"))))
                        response.update(allowed=False, status={
                            "code": 429, "reason": "TooManyRequests",
                            "message": "e2e: the API server sheds load, try again later",
                            "details": {"retryAfterSeconds": retry_after}})
                    else:
                        state.allowed += 1
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": response}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return Handler
