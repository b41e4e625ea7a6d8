"""KubeCluster's writes against a local HTTP server answering as the API server does.

What is checked here is the wire and the translation: each write's method, path, content type and
JSON body; the API server's answers (409, 403, 422, 429, 500) become success, ``JobRejected`` with
the server's own message, or the original error with its headers; an unanswered request times
out; and the worker ServiceAccount is created before a namespace's first Job, once. The real API
server's answers are in e2e/test_admission.py and e2e/test_operator.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeopt.controller.cluster import REQUEST_TIMEOUT, KubeCluster
from kubeopt.controller.handlers import retry_after
from kubeopt.controller.jobs import JobRejected

OWNER = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
         "metadata": {"name": "digits", "namespace": "ml", "uid": "u1"}}


def _refusal(code: int, message: str) -> ApiException:
    error = ApiException(status=code, reason="Unprocessable Entity" if code == 422 else "Forbidden")
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": code})
    return error


class Answers:
    """A local HTTP server in the API server's place: records each request (kind, namespace, JSON
    body), and answers a kind with the status and body it is told to (a Status, as the API server
    does), else 201 with the body sent back."""

    def __init__(self, job_error: ApiException | None = None, account_error: ApiException | None = None,
                 delay: float = 0.0) -> None:
        self.errors = {"job": job_error, "serviceaccount": account_error}
        self.delay = delay
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, str]] = []  # method, path, Content-Type
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.split("?")[0].strip("/").split("/")
                namespace = parts[parts.index("namespaces") + 1]
                kind = {"jobs": "job", "serviceaccounts": "serviceaccount"}.get(parts[parts.index("namespaces") + 2],
                                                                                  "status")
                if kind == "serviceaccount" and self.command == "PATCH":
                    kind, body = "serviceaccount-patch", {"name": parts[-1], **body}
                elif kind == "status" or (kind == "job" and self.command != "POST"):
                    kind = f"{self.command.lower()}-{kind}"
                answers.calls.append((kind, namespace, body))
                answers.requests.append((self.command, self.path, self.headers.get("Content-Type", "")))
                time.sleep(answers.delay)
                error = answers.errors.get(kind)
                code, out = (error.status, (error.body or "").encode()) if error else (201, json.dumps(body).encode())
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                if error is not None and error.headers:
                    for key, value in dict(error.headers).items():
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None: ...

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for answers in _SERVERS:
        answers.server.shutdown()
        answers.server.server_close()
    _SERVERS.clear()


_SERVERS: list[Answers] = []


def _cluster(answers: Answers, **kwargs: Any) -> KubeCluster:
    _SERVERS.append(answers)
    configuration = client.Configuration()
    configuration.host = answers.host
    configuration.retries = False  # urllib3 would retry a read timeout by itself
    return KubeCluster(client.ApiClient(configuration), **kwargs)


def _job(name: str = "digits-ort-1234abcd", namespace: str = "ml") -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"serviceAccountName": "kubeopt-worker", "containers": []}}}}


def test_the_worker_account_is_created_once_per_namespace_before_the_first_job() -> None:
    answers = Answers()
    cluster = _cluster(answers)

    cluster.create_job(OWNER, _job("a"))
    cluster.create_job(OWNER, _job("b"))
    cluster.create_job(OWNER, _job("c", namespace="other"))

    assert [(kind, ns) for kind, ns, _ in answers.calls] == [
        ("serviceaccount", "ml"), ("job", "ml"), ("job", "ml"), ("serviceaccount", "other"), ("job", "other")]
    account = answers.calls[0][2]
    assert account["metadata"]["name"] == "kubeopt-worker"
    assert account["automountServiceAccountToken"] is False


IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/kubeopt-worker"}


def test_the_worker_account_is_created_with_the_charts_annotations() -> None:
    answers = Answers()

    _cluster(answers, account_annotations=IRSA).create_job(OWNER, _job())

    assert answers.calls[0][0] == "serviceaccount"
    assert answers.calls[0][2]["metadata"]["annotations"] == IRSA


def test_an_existing_worker_account_gets_the_charts_annotations_patched_on() -> None:
    answers = Answers(account_error=ApiException(status=409))

    _cluster(answers, account_annotations=IRSA).create_job(OWNER, _job())

    assert [kind for kind, _, _ in answers.calls] == ["serviceaccount", "serviceaccount-patch", "job"]
    assert answers.calls[1][2] == {"name": "kubeopt-worker", "metadata": {"annotations": IRSA}}


def test_an_existing_worker_account_without_chart_annotations_is_left_alone() -> None:
    answers = Answers(account_error=ApiException(status=409))

    _cluster(answers).create_job(OWNER, _job())

    assert [kind for kind, _, _ in answers.calls] == ["serviceaccount", "job"]


def test_the_operator_creates_no_worker_account_when_the_chart_or_the_platform_team_does() -> None:
    answers = Answers()

    _cluster(answers, create_accounts=False).create_job(OWNER, _job())

    assert [kind for kind, _, _ in answers.calls] == ["job"]


def test_an_existing_worker_account_and_an_existing_job_are_fine() -> None:
    answers = Answers(account_error=ApiException(status=409), job_error=ApiException(status=409))

    assert _cluster(answers).create_job(OWNER, _job()) is False


@pytest.mark.parametrize("code", [403, 422])
def test_a_refused_job_raises_job_rejected_with_the_servers_message(code: int) -> None:
    message = ("admission webhook denied: ValidatingAdmissionPolicy 'kubeopt-operator-jobs' denied request: "
               "spec.template.spec.volumes: host: kubeopt Jobs mount only emptyDir volumes")
    answers = Answers(job_error=_refusal(code, message))

    with pytest.raises(JobRejected) as raised:
        _cluster(answers).create_job(OWNER, _job())

    assert (raised.value.code, raised.value.message, raised.value.job_name) == (code, message, "digits-ort-1234abcd")
    failed = raised.value.failed_status("ort")
    assert (failed.phase.value, failed.reason, failed.job_name) == ("Failed", "JobRejected", "digits-ort-1234abcd")
    assert message in (failed.message or "")


def test_a_refused_worker_account_refuses_the_job_too() -> None:
    answers = Answers(account_error=_refusal(403, 'serviceaccounts is forbidden: User "x" cannot create'))

    with pytest.raises(JobRejected, match="serviceaccounts is forbidden"):
        _cluster(answers).create_job(OWNER, _job())
    assert [kind for kind, _, _ in answers.calls] == ["serviceaccount"]


def test_other_api_errors_propagate_for_kopf_to_retry() -> None:
    answers = Answers(job_error=ApiException(status=500, reason="Internal Server Error"))

    with pytest.raises(ApiException):
        _cluster(answers).create_job(OWNER, _job())


def test_a_job_its_patches_and_the_status_go_out_as_json_to_their_paths_with_the_owner_reference() -> None:
    answers = Answers()
    cluster = _cluster(answers, create_accounts=False)

    cluster.create_job(OWNER, _job())
    cluster.patch_job("ml", "digits-ort-1234abcd", {"suspend": True})
    cluster.patch_status("ml", "digits", {"phase": "Pending"})
    cluster.delete_job("ml", "digits-ort-1234abcd")

    assert [(m, path, kind) for m, path, kind in answers.requests] == [
        ("POST", "/apis/batch/v1/namespaces/ml/jobs", "application/json"),
        ("PATCH", "/apis/batch/v1/namespaces/ml/jobs/digits-ort-1234abcd", "application/merge-patch+json"),
        ("PATCH", "/apis/kubeopt.io/v1alpha1/namespaces/ml/modeloptimizations/digits/status",
         "application/merge-patch+json"),
        ("DELETE", "/apis/batch/v1/namespaces/ml/jobs/digits-ort-1234abcd", "application/json")]
    created = answers.calls[0][2]
    assert created["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert [body for _, _, body in answers.calls[1:]] == [
        {"spec": {"suspend": True}}, {"status": {"phase": "Pending"}},
        {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}]


def test_a_429_keeps_the_servers_retry_after_for_the_retry() -> None:
    throttled = _refusal(429, "too many requests")
    throttled.headers = {"Retry-After": "3"}
    answers = Answers(job_error=throttled)

    with pytest.raises(ApiException) as raised:
        _cluster(answers, create_accounts=False).create_job(OWNER, _job())

    assert raised.value.status == 429
    assert retry_after(raised.value) == 3.0


def test_every_write_has_a_timeout_so_an_unanswered_request_cannot_hold_a_handler_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kubeopt.controller.cluster.REQUEST_TIMEOUT", (1.0, 0.3))
    answers = Answers(delay=2.0)  # answers after the read timeout
    started = time.monotonic()

    with pytest.raises(urllib3.exceptions.HTTPError):
        _cluster(answers, create_accounts=False).create_job(OWNER, _job())

    assert time.monotonic() - started < 1.5
    assert all(seconds > 0 for seconds in REQUEST_TIMEOUT)
