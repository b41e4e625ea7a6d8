"""Loaded into the operator by ``bench/operator_load.py --tracemalloc`` (this folder goes first on
its PYTHONPATH): traces allocations from start-up and, on SIGUSR1, writes the largest live
allocation sites to ``$KUBEOPT_TRACEMALLOC_DUMP``. A diagnosis tool for the bench only; the
operator itself has no such hook.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from types import FrameType

FRAMES = 12
TOP = 40


def _dump(signum: int, frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),))
    lines = [f"traced now {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB, "
             f"peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB", "", "## by line"]
    for stat in snapshot.statistics("lineno")[:TOP]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {stat.traceback[0]}")
    lines += ["", "## by file"]
    for stat in snapshot.statistics("filename")[:TOP]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {stat.traceback[0].filename}")
    lines += ["", "## by traceback"]
    for stat in snapshot.statistics("traceback")[:15]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
        lines += [f"    {frame}" for frame in stat.traceback.format()[-2 * FRAMES:]]
    path = os.environ["KUBEOPT_TRACEMALLOC_DUMP"]
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


if os.environ.get("KUBEOPT_TRACEMALLOC_DUMP"):
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, _dump)
