"""The API writes of a reconciliation, through the kubernetes client and kopf's event poster.

A 409 on create is success (the deterministic name already exists); a 404 on delete is too.
Events go through kopf (``kopf.event``), which batches and posts them for the
resource, so they show in ``kubectl describe``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeopt.api.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


class KubeCluster:
    """``reconcile.Cluster`` over a kubernetes ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def create_job(self, owner_body: Mapping[str, Any], job: dict[str, Any]) -> bool:
        """Create the Job owned by the resource; False when it already existed."""
        kopf.adopt(job, owner=cast(kopf.Body, dict(owner_body)))
        try:
            self.batch.create_namespaced_job(job["metadata"]["namespace"], cast(Any, job))
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        log.info("created Job %s/%s", job["metadata"]["namespace"], job["metadata"]["name"])
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    def patch_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Merge ``spec`` into the Job's spec (suspend, ttlSecondsAfterFinished; None removes)."""
        try:
            self.batch.patch_namespaced_job(name, namespace, {"spec": spec})
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile (its TTL, the resource's deletion)
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                              {"status": status})
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report to
                raise

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        # kopf.event, not kopf.info: the posting level (WARNING) only quiets kopf's own log lines.
        try:
            kopf.event(cast(kopf.Body, dict(body)), type="Warning" if warning else "Normal", reason=reason,
                       message=message)
        except Exception as error:  # an event is best effort; never fail a reconciliation for it
            log.warning("could not post event %s: %s", reason, error)
