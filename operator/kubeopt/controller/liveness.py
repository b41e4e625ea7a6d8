"""Liveness that fails when reconciling stops: a heartbeat from kopf's event loop and from its handler threads.

The metrics port answers from its own thread, so answering says nothing about the operator.
Two things have to keep moving for resources to be reconciled: kopf's asyncio loop (watches,
queues, timers) and the thread pool in which kopf runs the synchronous handlers (every
reconcile). ``keep_beating`` runs in the loop: each ``interval`` it records a loop beat and, when
the previous one has run, hands a no-op to the handler pool that records a pool beat. A loop
blocked by a synchronous call stops the first; handler threads that are all stuck (a deadlock,
a request that never returns) stop the second, since the no-op queues behind them.
``Heartbeat.problem`` says which one is older than ``timeout``; /healthz answers 503 with it.

The check runs outside the loop it watches, so a blocked loop gives a 503 that says so rather
than a probe that hangs. kopf's own liveness endpoint (``@kopf.on.probe``) is served from that
same loop and runs its probes there: it can tell a blocked loop only by timing out, and cannot
tell stuck handler threads at all. The timeout must exceed the longest a healthy burst keeps
every handler thread busy (bench/operator_load: 1,000 resources, all Jobs in 68 s).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor

DEFAULT_TIMEOUT = 180.0
DEFAULT_INTERVAL = 2.0


class Heartbeat:
    """When kopf's loop and its handler pool last made progress (monotonic seconds)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._loop = self._pool = clock()

    def beat_loop(self) -> None:
        with self._lock:
            self._loop = self.clock()

    def beat_pool(self) -> None:
        with self._lock:
            self._pool = self.clock()

    def problem(self) -> str | None:
        """None while both beat within ``timeout``; else what stopped, for /healthz and the log."""
        now = self.clock()
        with self._lock:
            loop_age, pool_age = now - self._loop, now - self._pool
        if loop_age > self.timeout:
            return f"kopf's event loop has not run for {loop_age:.0f} s (a synchronous call blocks it)"
        if pool_age > self.timeout:
            return (f"no handler thread has been free for {pool_age:.0f} s: every reconcile is stuck "
                    "(kill -USR1 the operator to log its threads' stacks)")
        return None


async def keep_beating(heartbeat: Heartbeat, pool: Callable[[], Executor], interval: float = DEFAULT_INTERVAL) -> None:
    """Beat until cancelled: the loop each ``interval``, the pool (``pool()``, read each time: kopf's
    settings may replace it) whenever its last no-op has run."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    while True:
        heartbeat.beat_loop()
        if pending is None or pending.done():
            pending = loop.run_in_executor(pool(), heartbeat.beat_pool)
        await asyncio.sleep(interval)
