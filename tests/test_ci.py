"""A missing tool skips a test on a developer's machine and fails it under CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS_A_MISSING_TOOL = '''
from tests.ci import missing_tool

def test_needs_a_tool():
    missing_tool("frobnicate is not installed")
'''


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 failed")])
def test_a_test_missing_its_tool_skips_locally_and_fails_under_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    test = tmp_path / "test_needs_tool.py"
    test.write_text(NEEDS_A_MISSING_TOOL)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                            capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "CI": ci,
                                                                          "PATH": "/usr/bin:/bin"}, check=False)

    assert outcome in result.stdout, result.stdout + result.stderr
