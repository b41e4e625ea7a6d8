"""The base of every spec model: camelCase on the wire, unknown fields rejected, frozen.

It lives apart from ``spec`` so that the backend descriptions (``kubeopt.api.backends``) and
their options models (``kubeopt.api.options``) can use it without importing the spec, which
is built from them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        use_enum_values=False,
    )
