"""Loaded into the operator by the load bench to see where its memory goes (this folder goes first
on the operator's PYTHONPATH). A diagnosis tool for ``bench/operator_load.py`` only; the operator
itself has no such hook.

- ``KUBEOPT_TRACEMALLOC_DUMP=FILE`` (``--tracemalloc``): trace allocations from start-up and, on
  SIGUSR1, write the largest live allocation sites (by line, file and traceback) to FILE.
- ``KUBEOPT_OBJECTS_DUMP=FILE``: on SIGUSR2, write live objects by type (gc), pymalloc's block
  count, the thread count and ``/proc/self/smaps_rollup`` to FILE. Cheap enough to run at full
  speed; it is what showed that at 1,000 resources the heap was not Python objects but ~620
  TLS connections (sockets, MemoryBIOs) and their buffers.
"""

from __future__ import annotations

import collections
import gc
import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 12
TOP = 40


def _write(path: str, lines: list[str]) -> None:
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def _dump_allocations(signum: int, frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),))
    now, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {now / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB", "", "## by line"]
    for stat in snapshot.statistics("lineno")[:TOP]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {stat.traceback[0]}")
    lines += ["", "## by file"]
    for stat in snapshot.statistics("filename")[:TOP]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {stat.traceback[0].filename}")
    lines += ["", "## by traceback"]
    for stat in snapshot.statistics("traceback")[:15]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
        lines += [f"    {frame}" for frame in stat.traceback.format()[-2 * FRAMES:]]
    _write(os.environ["KUBEOPT_TRACEMALLOC_DUMP"], lines)


def _dump_objects(signum: int, frame: FrameType | None) -> None:
    objects = gc.get_objects()
    counts = collections.Counter(type(o).__qualname__ for o in objects)
    lines = [f"pymalloc blocks {sys.getallocatedblocks()}", f"gc objects {len(objects)}",
             f"threads {threading.active_count()}", Path(f"/proc/{os.getpid()}/smaps_rollup").read_text()]
    lines += [f"{n:9d} {name}" for name, n in counts.most_common(60)]
    _write(os.environ["KUBEOPT_OBJECTS_DUMP"], lines)


if os.environ.get("KUBEOPT_TRACEMALLOC_DUMP"):
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, _dump_allocations)
if os.environ.get("KUBEOPT_OBJECTS_DUMP"):
    signal.signal(signal.SIGUSR2, _dump_objects)
