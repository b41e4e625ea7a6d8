"""kopf's settings as the operator configures them: what the load bench measured to hold memory."""

from __future__ import annotations

import kopf

from kubeopt.controller.main import configure


def test_kopf_has_no_worker_limit_that_could_stall_indexing_and_frees_an_idle_worker_within_a_second() -> None:
    settings = kopf.OperatorSettings()

    configure(settings)

    # Handlers wait until every object is indexed; objects beyond a worker limit are not read
    # until a worker exits, so a restart with more objects than the limit stood still
    # (e2e/test_faults.py's kill test caught it at 40 with 80 Jobs and 80 pods).
    assert settings.queueing.worker_limit is None
    # With kopf's 5 s, idle workers (and their connections) piled up in a burst (bench/results/operator_load.md).
    assert settings.queueing.idle_timeout <= 1.0


def test_kopf_builds_and_reads_no_diff_base_since_no_handler_compares_with_one() -> None:
    settings = kopf.OperatorSettings()
    body = kopf.Body({"metadata": {"name": "digits", "annotations": {
        "kubeopt.io/last-handled-configuration": '{"spec": {"old": true}}'}}, "spec": {"big": "x" * 1000}})

    configure(settings)
    storage = settings.persistence.diffbase_storage

    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None  # an older operator's annotation is not parsed either
    assert settings.persistence.finalizer == "kubeopt.io/finalizer"  # so kopf can remove an older operator's
