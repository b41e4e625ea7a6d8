"""Builders for the objects the controller reads: a resource, its Jobs and pods, as plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from kubeopt.api.reasons import Reason
from kubeopt.api.spec import ModelOptimizationSpec
from kubeopt.api.summary import ArtifactRef, Summary, TargetSummary, encode
from kubeopt.controller.jobs import Owner
from kubeopt.controller.settings import OperatorSettings


def spec_dict(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/digits.onnx", "format": "onnx",
                  "inputs": [{"name": "pixels", "shape": [-1, 1, 8, 8]}]},
        "targets": [{"name": "ort-fp32", "backend": "onnxruntime", "precision": "fp32"},
                    {"name": "trt-fp16", "backend": "tensorrt", "precision": "fp16"}],
        "output": {"uri": "s3://artifacts/digits"},
    }
    body.update(overrides)
    return body


def owner(generation: int = 1, name: str = "digits", namespace: str = "ml", uid: str = "u1",
          **overrides: Any) -> Owner:
    return Owner(name=name, namespace=namespace, uid=uid, generation=generation, spec=spec_dict(**overrides))


def parsed(o: Owner) -> ModelOptimizationSpec:
    return ModelOptimizationSpec.model_validate(o.spec)


def job(name: str, *, conditions: list[dict[str, Any]] | None = None, active: int = 0, succeeded: int = 0,
        failed: int = 0, generation: int = 1, suspend: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"active": active, "succeeded": succeeded, "failed": failed,
                              "startTime": "2026-11-25T10:00:00Z", "conditions": conditions or []}
    if any(c["type"] == "Complete" for c in conditions or []):
        status["completionTime"] = "2026-11-25T10:02:00Z"
    return {"metadata": {"name": name, "labels": {"kubeopt.io/generation": str(generation)}},
            "spec": {"suspend": suspend, "activeDeadlineSeconds": 3600}, "status": status}


def cond(kind: str, reason: str = "", status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": "2026-11-25T10:03:00Z"}


def pod(name: str = "p", *, exit_code: int | None = None, message: str | None = None, reason: str = "",
        conditions: list[dict[str, Any]] | None = None, created: str = "2026-11-25T10:00:00Z",
        phase: str | None = None, finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions or []}
    if phase is not None:
        status["phase"] = phase
    if exit_code is not None:
        terminated: dict[str, Any] = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0
                                                                                    else "Error")}
        if message is not None:
            terminated["message"] = message
        if finished is not None:
            terminated["finishedAt"] = finished
        status["containerStatuses"] = [{"name": "worker", "state": {"terminated": terminated}}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def summary_text(target: str = "ort-fp32", *, reason: Reason = Reason.SUCCEEDED, throughput: float = 5000.0,
                 p50: float = 0.4, speedup: float = 1.5) -> str:
    ok = reason is Reason.SUCCEEDED
    result = TargetSummary(
        name=target, phase="Succeeded" if ok else "Failed", reason=reason, message="" if ok else "too much drift",
        batch=32, throughput=throughput if ok else None, baseline_throughput=throughput / speedup if ok else None,
        p50_ms=p50 if ok else None, speedup=speedup if ok else None,
        artifact=ArtifactRef(uri=f"s3://artifacts/digits/{target}", sha256="ab" * 32, size=1234) if ok else None)
    return encode(Summary(status="Succeeded" if ok else "Failed", reason=reason, targets=[result]))


@pytest.fixture()
def settings() -> OperatorSettings:
    return OperatorSettings(default_image="worker:test")
