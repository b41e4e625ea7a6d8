"""Progress of a local run: one status line rewritten in place on a terminal, plain lines otherwise.

The pipeline reports progress as lines ``<subject>: <what>`` (``RunSettings.progress``): the
subject is a stage of the run (storage, load, calibration data, baseline) or a target's name, and
a target's line says which step it reached (``STEPS``). On a terminal, ``LiveProgress`` turns
them into one line, redrawn a few times a second so the clocks move during a long build:

    [0:42] compile-int8 (2/4) · benchmark 0:07 · relative error 3.1e-03, top-1 agreement 0.9950

A target's outcome (published or FAILED) is also printed as a line of its own that stays. Not
on a terminal (a Job's log, a pipe), ``plain_progress`` logs each line as before, with no
control characters.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TextIO

log = logging.getLogger("kubeopt.worker")
Clock = Callable[[], float]
CLEAR = "\r\x1b[2K"  # back to the line's start, erase it
# A target's line -> the step it is in (the pipeline's wording: pipeline._run_target, _measure, _publish_target).
STEPS = (("build ", "build"), ("built in", "validate"), ("relative error", "benchmark"),
         ("published", "published"), ("FAILED", "failed"))
OUTCOMES = ("published", "failed")


def plain_progress(line: str) -> None:
    """Not on a terminal: each progress line as a log line, as a Job's log has always shown it."""
    log.info("%s", line)


def _clock_text(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class LiveProgress:
    """A callable for ``RunSettings.progress`` that keeps one status line up to date on ``stream``.

    Use it as a context manager: entering starts the redraw thread, leaving stops it and erases
    the status line, so the table that follows starts on a clean line.
    """

    def __init__(self, stream: TextIO, targets: Sequence[str], *, clock: Clock = time.monotonic,
                 interval: float = 0.25, columns: Callable[[], int] | None = None) -> None:
        self.stream = stream
        self.targets = list(targets)
        self.clock = clock
        self.interval = interval
        self.columns = columns or (lambda: shutil.get_terminal_size((100, 24)).columns)
        self.started = clock()
        self.stage, self.target, self.detail = "start", "", ""
        self.stage_started = self.started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        subject, _, what = line.partition(": ")
        with self._lock:
            if subject in self.targets:
                step = next((name for prefix, name in STEPS if what.startswith(prefix)), self.stage)
                self._enter(step, subject)
                if step in OUTCOMES:
                    self.stream.write(f"{CLEAR}[{_clock_text(self.clock() - self.started)}] {line}\n")
            else:
                self._enter(subject, "")
            self.detail = what
            self._draw()

    def _enter(self, stage: str, target: str) -> None:
        if (stage, target) != (self.stage, self.target):
            self.stage, self.target, self.stage_started = stage, target, self.clock()

    def status(self) -> str:
        """The status line: total elapsed, target (its place in the run), stage and its elapsed, detail."""
        now = self.clock()
        parts = [f"[{_clock_text(now - self.started)}]"]
        if self.target:
            parts.append(f"{self.target} ({self.targets.index(self.target) + 1}/{len(self.targets)}) ·")
        parts.append(f"{self.stage} {_clock_text(now - self.stage_started)}")
        text = " ".join(parts) + (f" · {self.detail}" if self.detail else "")
        limit = max(self.columns() - 1, 20)
        return text if len(text) <= limit else text[:limit - 1] + "…"

    def _draw(self) -> None:
        self.stream.write(CLEAR + self.status())
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def __enter__(self) -> LiveProgress:
        self._thread = threading.Thread(target=self._tick, name="kubeopt-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.stream.write(CLEAR)
            self.stream.flush()
