from __future__ import annotations

from kubeopt.worker.errors import first_line


def test_first_line_keeps_only_the_first_line_of_a_long_message() -> None:
    assert first_line(RuntimeError("\n  shape mismatch\n  at node 7\n")) == "shape mismatch"


def test_first_line_of_an_empty_message_is_the_error_type() -> None:
    assert first_line(AssertionError()) == "AssertionError"


def test_first_line_is_cut_at_the_limit() -> None:
    assert first_line(ValueError("x" * 500), 20) == "x" * 20
