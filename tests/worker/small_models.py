"""Tiny torch models and a comparison shared by the low-precision rewrite tests (float8, int8)."""

from __future__ import annotations

from typing import Any

import torch


def relative_error(actual: Any, expected: Any) -> float:
    return float((actual.detach().float() - expected.detach().float()).norm() / expected.detach().float().norm())


class Encoderish(torch.nn.Module):
    """Token-shaped input through two FFN-sized layers and a head of odd width (10: a multiple of
    neither 8 nor 16, so both rewrites leave it alone)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(64, 256)
        self.down = torch.nn.Linear(256, 64, bias=False)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: Any) -> Any:
        return self.head(torch.nn.functional.gelu(self.down(torch.nn.functional.gelu(self.up(x)))))
