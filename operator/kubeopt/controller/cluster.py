"""The API writes of a reconciliation, through the kubernetes client and kopf's event poster.

A 409 on create is success (the deterministic name already exists); a 404 on delete is too.
Events go through kopf (``kopf.event``), which batches and posts them for the
resource, so they show in ``kubectl describe``.

Before its first Job in a namespace the operator makes sure the worker ServiceAccount exists
there (create; 409 means it does, and then only the chart's annotations are patched onto it, for
IRSA or Workload Identity): Jobs name it, and the ServiceAccount admission plugin refuses pods
of an account that does not exist. With ``create_accounts`` off (the chart or the platform team
creates the account) the operator never writes it. A Job the API server refuses (403, 422: an
admission policy, RBAC) raises ``JobRejected`` with the server's message: retrying the same
manifest cannot help, so the reconciler records the target as failed instead.

Jobs, their patches and status go out as plain JSON through the client's connection pool
(``_send``), not through the typed API methods: those validate the body into the client's models
and build models again from the response, which nothing here reads, and cost 2.7 ms of CPU a
call against 1.5 (``bench/results/operator_load.md``); the operator shares the API server's
cores in a burst. Errors are the client's ``ApiException``, as from the typed methods.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeopt.api.spec import GROUP, PLURAL, VERSION
from kubeopt.controller.jobs import JobRejected
from kubeopt.controller.names import MANAGED_BY, MANAGED_BY_VALUE

log = logging.getLogger(__name__)
# (connect, read) seconds of every write: a request the API server never answers fails (and is
# retried) instead of holding one of kopf's handler threads for ever.
REQUEST_TIMEOUT = (10.0, 60.0)
REFUSED = (403, 422)  # forbidden (RBAC, an admission policy's reason) and invalid (a policy's default)
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def server_message(error: ApiException) -> str:
    """The message of the API server's Status in ``error``'s body, else its reason phrase."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        status = None
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or error.reason or f"HTTP {error.status}")


def worker_service_account(name: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The worker's ServiceAccount: no token is mounted from it, and nothing binds it to a role."""
    metadata: dict[str, Any] = {"name": name, "labels": {MANAGED_BY: MANAGED_BY_VALUE}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata,
            "automountServiceAccountToken": False}


class KubeCluster:
    """``reconcile.Cluster`` over a kubernetes ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient, create_accounts: bool = True,
                 account_annotations: Mapping[str, str] | None = None) -> None:
        self.create_accounts = create_accounts
        self.account_annotations = dict(account_annotations or {})
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self._accounts: set[tuple[str, str]] = set()  # (namespace, name) known to exist
        self._accounts_lock = threading.Lock()

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        """Create the Job owned by the resource; False when it already existed.

        Raises ``JobRejected`` when the API server refuses it (403 or 422)."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        account = job["spec"]["template"]["spec"].get("serviceAccountName")
        kopf.adopt(job, owner=cast(kopf.Body, dict(owner_body)))
        try:
            if account and self.create_accounts:
                self.ensure_service_account(namespace, account)
            self._send("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job, JSON)
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status in REFUSED:
                raise JobRejected(name, error.status, server_message(error)) from None
            raise
        log.info("created Job %s/%s", namespace, name)
        return True

    def ensure_service_account(self, namespace: str, name: str) -> None:
        """Create the worker ServiceAccount in ``namespace`` unless it is known to exist."""
        with self._accounts_lock:
            if (namespace, name) in self._accounts:
                return
        account = worker_service_account(name, self.account_annotations)
        try:
            self.core.create_namespaced_service_account(namespace, cast(Any, account), _request_timeout=REQUEST_TIMEOUT)
            log.info("created ServiceAccount %s/%s for the worker", namespace, name)
        except ApiException as error:
            if error.status != 409:
                raise
            if self.account_annotations:  # an older account: the role it assumes may have changed
                self.core.patch_namespaced_service_account(
                    name, namespace, {"metadata": {"annotations": self.account_annotations}},
                    _request_timeout=REQUEST_TIMEOUT)
        with self._accounts_lock:
            self._accounts.add((namespace, name))

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self._send("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                       {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}, JSON)
        except ApiException as error:
            if error.status != 404:
                raise

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Merge ``spec`` into the Job's spec (suspend, ttlSecondsAfterFinished; None removes)."""
        try:
            self._send("PATCH", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", {"spec": spec}, MERGE_PATCH)
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile (its TTL, the resource's deletion)
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._send("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
                       {"status": status}, MERGE_PATCH)
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report to
                raise

    def _send(self, method: str, path: str, body: Mapping[str, Any], content_type: str) -> None:
        """One write; its response is read (the connection goes back to the pool) and dropped.
        A status other than 2xx raises ``ApiException`` with the server's status, headers and body."""
        method, url, headers, data, _ = self.api.param_serialize(
            method, path, header_params={"Content-Type": content_type, "Accept": JSON}, body=dict(body),
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, data, _request_timeout=REQUEST_TIMEOUT)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        # kopf.event, not kopf.info: the posting level (CRITICAL) only quiets kopf's own log lines.
        try:
            kopf.event(cast(kopf.Body, dict(body)), type="Warning" if warning else "Normal", reason=reason,
                       message=message)
        except Exception as error:  # an event is best effort; never fail a reconciliation for it
            log.warning("could not post event %s: %s", reason, error)
