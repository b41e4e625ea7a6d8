from __future__ import annotations

import threading
from typing import Any

import pytest

import kubeopt.controller.handlers as handlers
from kubeopt.controller.handlers import _owner_key, _view


def test_jobs_and_pods_are_keyed_by_their_resources_namespace_and_name() -> None:
    assert _owner_key("ml", {"kubeopt.io/optimization": "digits"}) == ("ml", "digits")
    assert _owner_key("ml", {}) is None
    assert _owner_key(None, {"kubeopt.io/optimization": "digits"}) is None


def test_the_view_groups_pods_by_their_job() -> None:
    key = ("ml", "digits")
    pods = [{"metadata": {"labels": {"batch.kubernetes.io/job-name": "j1"}}},
            {"metadata": {"labels": {"job-name": "j2"}}}, {"metadata": {"labels": {}}}]
    indexes: dict[str, dict[Any, list[Any]]] = {
        "mopt": {key: [{"metadata": {"name": "digits"}}]}, "job": {key: [{"metadata": {"name": "j1"}}]},
        "pod": {key: pods}}

    view = _view(key, indexes["mopt"], indexes["job"], indexes["pod"])  # type: ignore[arg-type]

    assert view is not None
    assert sorted(view.pods_by_job) == ["j1", "j2"]
    assert _view(("ml", "other"), indexes["mopt"], indexes["job"], indexes["pod"]) is None  # type: ignore[arg-type]


def test_a_failed_reconcile_after_an_event_is_retried_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "RETRY_SECONDS", 0.01)
    calls: list[int] = []
    done = threading.Event()

    def flaky(key: Any, indexes: Any) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("API server hiccup")
        done.set()

    handlers._guarded(flaky, ("ml", "digits"), {})

    assert done.wait(5)
    assert len(calls) == 3
