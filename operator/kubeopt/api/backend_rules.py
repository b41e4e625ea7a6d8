"""The CRD's CEL rules that come from the backend descriptions.

They mirror ``kubeopt.api.spec.support_errors`` and ``option_block_errors`` so that the API
server refuses what the worker would refuse: a precision a backend does not build on the
spec's device kind (``resources.gpu: 0`` is a CPU; unset is 1, a GPU), a model format it does
not accept, a calibration method it does not offer, an options block of another backend.
Each message names the field and what is supported. The messages are static: a
``messageExpression`` that concatenates a target's name made the API server's cost estimate
refuse the whole CRD (Kubernetes 1.35, "exceeds budget by factor of more than 100x").
"""

from __future__ import annotations

from typing import Any

from kubeopt.api.backends import (
    BACKENDS,
    BackendDescription,
    CalibrationMethod,
    DeviceKind,
    ModelFormat,
    Precision,
    names,
    triton_backends,
)

ON_A_CPU = "(has(self.resources) && has(self.resources.gpu) && self.resources.gpu == 0)"
PRECISION = "(has(t.precision) ? t.precision : 'fp32')"


def _list(values: Any) -> str:
    return "[" + ", ".join(f"'{v.value}'" for v in values) + "]"


def _precision_rule(backend: BackendDescription, device: DeviceKind) -> dict[str, Any] | None:
    allowed = backend.precisions(device)
    if allowed == frozenset(Precision):
        return None
    name = backend.name.value
    elsewhere = f"!{ON_A_CPU}" if device is DeviceKind.CPU else ON_A_CPU  # the other kind: the rule does not apply
    if not allowed:
        bad = f"t.backend == '{name}'"
        text = (f"backend {name} needs a GPU (spec.resources.gpu is 0): set resources.gpu >= 1, or use a backend "
                "that builds on a CPU")
        return {"rule": f"{elsewhere} || self.targets.all(t, !({bad}))",
                "message": f"spec.targets[].backend: {text}",
                "fieldPath": ".targets"}
    bad = f"t.backend == '{name}' && !({PRECISION} in {_list(p for p in Precision if p in allowed)})"
    builds = (f"builds {names(allowed, Precision)} on a {device.value.upper()} "
              f"(spec.resources.gpu{': 0' if device is DeviceKind.CPU else ' >= 1'})")
    return {"rule": f"{elsewhere} || self.targets.all(t, !({bad}))",
            "message": f"spec.targets[].precision: a target of backend {name} asks for a precision it does not "
                       f"build there; {name} {builds}",
            "fieldPath": ".targets"}


def _format_rule(backend: BackendDescription) -> dict[str, Any] | None:
    if backend.formats == frozenset(ModelFormat):
        return None
    name = backend.name.value
    accepted = _list(f for f in ModelFormat if f in backend.formats)
    text = f"backend {name} accepts {names(backend.formats, ModelFormat)} only: {backend.format_hint}"
    uses = f"t.backend == '{name}'"
    return {"rule": f"!self.targets.exists(t, {uses}) || self.model.format in {accepted}",
            "message": f"spec.model.format: {text}",
            "fieldPath": ".model.format"}


def _method_rule(backend: BackendDescription) -> dict[str, Any] | None:
    if set(backend.calibration_methods) == set(CalibrationMethod):
        return None
    name = backend.name.value
    offered = ", ".join(backend.calibration_methods)
    text = (f"backend {name} calibrates int8 with {offered} only (or leave method unset: each backend "
            "then uses its default)")
    calibrates = f"t.backend == '{name}' && {PRECISION} == 'int8'"
    return {"rule": "!has(self.calibration) || !has(self.calibration.method) || "
                    f"!self.targets.exists(t, {calibrates}) || "
                    f"self.calibration.method in {_list(backend.calibration_methods)}",
            "message": f"spec.calibration.method: {text}",
            "fieldPath": ".calibration.method"}


def spec_rules() -> list[dict[str, Any]]:
    """Rules on ``spec``: precision per device kind, model format, calibration method, Triton layout."""
    rules: list[dict[str, Any] | None] = []
    for backend in BACKENDS.values():
        rules += [_precision_rule(backend, DeviceKind.CPU), _precision_rule(backend, DeviceKind.GPU),
                  _format_rule(backend), _method_rule(backend)]
    served = sorted(b.value for b in triton_backends())
    rules.append({
        "rule": "!has(self.output.layout) || self.output.layout != 'triton' || "
                f"self.targets.all(t, t.backend in {served})",
        "message": f"output.layout triton serves {' and '.join(served)} targets only",
        "fieldPath": ".output.layout",
    })
    return [rule for rule in rules if rule is not None]


def target_rules() -> list[dict[str, Any]]:
    """Rules on each ``spec.targets[]``: an options block only for its own backend."""
    return [{"rule": f"!has(self.{d.image_key}) || self.backend == '{d.name.value}'",
             "message": f"options block {d.image_key} is only for backend {d.name.value}"}
            for d in BACKENDS.values()]
