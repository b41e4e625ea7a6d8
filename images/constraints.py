"""Constraints for installing kubeopt into a base image that already has a framework (NVIDIA's
PyTorch, TensorRT and TensorFlow images): every distribution the base has stays at its version,
and the lock files pin only what the base lacks.

    python3 images/constraints.py requirements/torch.txt [more locks...] > /tmp/constraints.txt
    pip install -c /tmp/constraints.txt '/src[torch]'

Run with the base image's own Python (it reads that interpreter's installed distributions). pip
then installs only what is missing and fails loudly, instead of replacing the base's torch or CUDA
libraries, when something kubeopt needs cannot live with the base's versions. Standard library only.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(\s*;.*)?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """canonical name -> version of every distribution this interpreter has."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def constraints(base: dict[str, str], locks: list[str]) -> list[str]:
    """The base's pins, then each lock pin of a distribution the base lacks (first lock wins)."""
    lines = [f"{name}=={version}" for name, version in sorted(base.items())]
    seen = set(base)
    for text in locks:
        for raw in text.splitlines():
            match = PIN.match(raw.strip())
            if not match or canonical(match[1]) in seen:
                continue
            seen.add(canonical(match[1]))
            lines.append(raw.strip())
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: constraints.py LOCK [LOCK...] > constraints.txt", file=sys.stderr)
        return 2
    print("\n".join(constraints(installed(), [Path(p).read_text() for p in argv])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
