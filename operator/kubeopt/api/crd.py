"""Generate the ModelOptimization CustomResourceDefinition from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes structural schema: ``$ref`` inlined,
``Optional[X]`` collapsed to ``X``, free-form maps marked with
``x-kubernetes-preserve-unknown-fields``, and a field's own ``x-kubernetes-*`` markers (int-or-string
quantities, CEL rules on URIs and quantities) kept.

Defaults are written into each field's description ("Default: 1."), where ``kubectl explain``
shows them, and not as schema ``default``s: the API server applies schema defaults to stored
objects whenever it reads them, so a CRD upgrade would change the spec of every existing
resource, and with it the work hash in each of its Job names (``controller.names``): every
finished target would run again. The models own the defaults, so a spec means the same with or
without them written out. Cross-field rules become CEL
``x-kubernetes-validations`` that mirror ``spec.cross_field_errors`` (those that come from the
backend descriptions are written by ``kubeopt.api.backend_rules``).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from kubeopt.api.backend_rules import spec_rules, target_rules
from kubeopt.api.spec import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ModelOptimizationSpec,
)
from kubeopt.api.status import ModelOptimizationStatus

_KEEP = {"type", "description", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum",
         "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "format",
         "x-kubernetes-validations"}
INT_OR_STRING = "x-kubernetes-int-or-string"


def _with_default(description: str, node: dict[str, Any]) -> str:
    """``description`` ending with the field's default, for ``kubectl explain``."""
    if "default" not in node or node["default"] is None or node["default"] == {}:
        return description
    default = node["default"]
    shown = default if isinstance(default, str) else yaml.safe_dump(default, default_flow_style=True).strip()
    shown = shown.removesuffix("\n...").strip()
    return f"{description.rstrip()} Default: {shown}." if description else f"Default: {shown}."


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Return the structural-schema form of one pydantic JSON-schema node."""
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if node.get(INT_OR_STRING):
        kept = {k: v for k, v in node.items() if k in ("description", "x-kubernetes-validations")}
        return {**kept, INT_OR_STRING: True}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        if len(options) == 1:
            return _structural({**options[0], **rest, "description": rest.get("description",
                                options[0].get("description", ""))}, defs)
        # A union of scalars (e.g. bool | int | float | str option values).
        return {"description": rest.get("description", ""), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "description" in out or "default" in node:
        out["description"] = _with_default(out.get("description", ""), node)
    if "exclusiveMinimum" in out:
        out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
    if "exclusiveMaximum" in out:
        out["maximum"], out["exclusiveMaximum"] = out["exclusiveMaximum"], True
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        out["properties"] = {name: _structural(prop, defs) for name, prop in node["properties"].items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    elif kind == "object":
        values = node.get("additionalProperties")
        if isinstance(values, dict) and values.get("type") in ("string", "integer", "number", "boolean"):
            out["additionalProperties"] = {"type": values["type"]}
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _structural(node["items"], defs)
    if "enum" in node and "type" not in out:
        out["type"] = "string"
    if not out.get("description"):
        out.pop("description", None)  # array items: the array's own description covers them
    return out


class _FactoryDefaults(GenerateJsonSchema):
    """Pydantic's JSON schema, with the defaults of ``default_factory`` fields that are lists or
    scalars too (benchmark.batchSizes: [1, 8, 32]); nested models' defaults stay out."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        return NoDefault if isinstance(value, BaseModel) or value in ([], {}) else value


def _schema_of(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    return _structural(raw, raw.get("$defs", {}))


def spec_schema() -> dict[str, Any]:
    """The structural OpenAPI schema of ``spec``, with CEL rules attached."""
    schema = _schema_of(ModelOptimizationSpec)
    schema["x-kubernetes-validations"] = [
        {
            "rule": "self.targets.all(t, !has(t.precision) || t.precision != 'int8' || has(self.calibration))",
            "message": "int8 targets need spec.calibration (uri of calibration data)",
            "fieldPath": ".calibration",
        },
        {
            "rule": "self.targets.all(t, self.targets.exists_one(u, u.name == t.name))",
            "message": "spec.targets: target names must be unique",
            "fieldPath": ".targets",
        },
        {
            "rule": "!has(self.selection) || !has(self.selection.batchSize) || "
            "(has(self.benchmark) && has(self.benchmark.batchSizes) ? "
            "self.selection.batchSize in self.benchmark.batchSizes : self.selection.batchSize in [1, 8, 32])",
            "message": "spec.selection.batchSize must be one of spec.benchmark.batchSizes",
            "fieldPath": ".selection.batchSize",
        },
        *spec_rules(),  # from the backend descriptions: precision, format, method, Triton layout
    ]
    schema["properties"]["targets"]["items"]["x-kubernetes-validations"] = target_rules()
    return schema


def _status_schema() -> dict[str, Any]:
    """The schema of ``status``, defaulted to ``{observedGeneration: 0}``.

    Until the operator first writes a status, a resource has none, and kstatus (kpt, Config Sync,
    Flux's health checks) then calls it Current: applied and done. The API server applies schema
    defaults when it reads an object, so a resource the operator has not seen yet reads as
    generation 1 observed at 0, which kstatus and Argo CD's health.lua call InProgress/Progressing.
    Nothing in the spec changes, so the Jobs' work hashes do not either."""
    schema = _schema_of(ModelOptimizationStatus)
    schema["default"] = {"observedGeneration": 0}
    return schema


def build_crd() -> dict[str, Any]:
    """Return the CustomResourceDefinition as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": KIND, "plural": PLURAL, "singular": SINGULAR, "shortNames": SHORT_NAMES,
                      "listKind": f"{KIND}List", "categories": ["kubeopt"]},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Best", "type": "string", "jsonPath": ".status.bestTarget"},
                        {"name": "Speedup", "type": "string", "jsonPath": ".status.bestSpeedup"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "ModelOptimization turns a trained model into faster ones: one Job "
                            "per target converts, calibrates, compiles, validates and benchmarks it.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version."},
                                "kind": {"type": "string", "description": "Kind."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": _status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed under crds/."""
    header = "# Generated by `kubeopt crd` from kubeopt.api; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
