"""KubeCluster's writes against recording stand-ins of the kubernetes client's API objects.

What is checked here is the translation: the API server's answers (409, 403, 422, 500) become
success, ``JobRejected`` with the server's own message, or the original error; and the worker
ServiceAccount is created before a namespace's first Job, once. The real API server's answers
are in e2e/test_admission.py and e2e/test_operator.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeopt.controller.cluster import REQUEST_TIMEOUT, KubeCluster
from kubeopt.controller.jobs import JobRejected

OWNER = {"apiVersion": "kubeopt.io/v1alpha1", "kind": "ModelOptimization",
         "metadata": {"name": "digits", "namespace": "ml", "uid": "u1"}}


def _refusal(code: int, message: str) -> ApiException:
    error = ApiException(status=code, reason="Unprocessable Entity" if code == 422 else "Forbidden")
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": code})
    return error


@dataclass
class Answers:
    """Stands in for BatchV1Api and CoreV1Api: records calls, raises what it is told to."""

    job_error: ApiException | None = None
    account_error: ApiException | None = None
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    timeouts: list[Any] = field(default_factory=list)

    def create_namespaced_job(self, namespace: str, body: dict[str, Any], _request_timeout: Any = None) -> None:
        self.calls.append(("job", namespace, body))
        self.timeouts.append(_request_timeout)
        if self.job_error is not None:
            raise self.job_error

    def create_namespaced_service_account(self, namespace: str, body: dict[str, Any],
                                          _request_timeout: Any = None) -> None:
        self.calls.append(("serviceaccount", namespace, body))
        self.timeouts.append(_request_timeout)
        if self.account_error is not None:
            raise self.account_error

    def patch_namespaced_service_account(self, name: str, namespace: str, body: dict[str, Any],
                                         _request_timeout: Any = None) -> None:
        self.calls.append(("serviceaccount-patch", namespace, {"name": name, **body}))
        self.timeouts.append(_request_timeout)


def _cluster(answers: Answers, **kwargs: Any) -> KubeCluster:
    cluster = KubeCluster(client.ApiClient(client.Configuration()), **kwargs)
    cluster.batch = answers  # type: ignore[assignment]
    cluster.core = answers  # type: ignore[assignment]
    return cluster


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


def test_every_write_has_a_timeout_so_an_unanswered_request_cannot_hold_a_handler_thread() -> None:
    answers = Answers()

    _cluster(answers).create_job(OWNER, _job())

    assert answers.timeouts == [REQUEST_TIMEOUT, REQUEST_TIMEOUT]
    assert all(seconds > 0 for seconds in REQUEST_TIMEOUT)
