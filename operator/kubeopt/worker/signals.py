"""SIGTERM and SIGINT end a run cleanly.

A Job's pod gets SIGTERM on its deadline, on eviction or on deletion; a person at a terminal
presses Ctrl-C. Either raises Interrupted in the main thread. It derives from BaseException
so that it unwinds past every ``except Exception`` (no target takes it for its own failure)
while ``with`` blocks and ``finally`` clauses still run: the workspace is removed on the way
out, and a publish cut short leaves no pointer moved. Further signals are ignored while the
run unwinds, so a second Ctrl-C cannot interrupt the cleanup.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """The run was stopped by a signal; ``signal_name`` is SIGTERM or SIGINT."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into Interrupted while the block runs; restore the handlers after."""
    previous: dict[signal.Signals, Any] = {number: signal.getsignal(number) for number in SIGNALS}

    def stop(number: int, _frame: FrameType | None) -> None:
        for other in SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signal.Signals(number).name)

    for number in SIGNALS:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
