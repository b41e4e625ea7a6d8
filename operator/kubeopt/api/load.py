"""Read a ModelOptimization from YAML or JSON text, with errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import ValidationError

from kubeopt.api.spec import ModelOptimization


class SpecError(ValueError):
    """The resource is not valid; the message lists each field and what is allowed."""


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before")):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text


def describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = _path(tuple(item["loc"])) or "spec"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_resource(document: dict[str, Any]) -> ModelOptimization:
    """Validate a parsed document; raises SpecError naming every bad field."""
    if not isinstance(document, dict):
        raise SpecError("the file must hold one ModelOptimization object")
    try:
        return ModelOptimization.model_validate(document)
    except ValidationError as error:
        raise SpecError(describe(error)) from error


def load_resource(text: str, source: str = "input") -> ModelOptimization:
    """Parse YAML (or JSON) text holding one ModelOptimization."""
    try:
        document = yaml.safe_load(text) if not text.lstrip().startswith("{") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise SpecError(f"{source}: not valid YAML/JSON: {error}") from error
    return parse_resource(document)
