"""Skips that CI does not allow: a test that needs a tool skips on a developer's machine without it,
but fails when ``CI`` is set (GitHub Actions and most CI services set CI=true), because `make test`
installs every tool (`make debian-tools`) before the unit stage and a skip there would hide a
broken install: the promtool rule tests skipped silently in a fresh `make test` before this.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "missing_tool"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_tool(reason: str) -> NoReturn:
    """Skip for ``reason`` (a tool is not installed), or fail under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: `make test` installs it first, so this is a broken install, not a skip)")
    pytest.skip(reason)
