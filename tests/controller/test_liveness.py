"""The heartbeat fails liveness when kopf's loop is blocked or every handler thread is stuck, and not otherwise.

``keep_beating`` runs in a real asyncio loop on its own thread with a real thread pool, as in
kopf; the loop is blocked by a synchronous call in it, the pool by threads that wait on an event.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from kubeopt.controller.liveness import Heartbeat, keep_beating

TIMEOUT = 0.4
INTERVAL = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_heartbeat_is_healthy() -> None:
    assert Heartbeat(timeout=10, clock=Clock()).problem() is None


def test_a_loop_that_stopped_beating_is_named_with_its_age() -> None:
    clock = Clock()
    heartbeat = Heartbeat(timeout=10, clock=clock)
    clock.now += 11
    heartbeat.beat_pool()

    assert heartbeat.problem() == "kopf's event loop has not run for 11 s (a synchronous call blocks it)"


def test_stuck_handler_threads_are_named_and_the_hint_says_how_to_see_them() -> None:
    clock = Clock()
    heartbeat = Heartbeat(timeout=10, clock=clock)
    clock.now += 30
    heartbeat.beat_loop()

    problem = heartbeat.problem() or ""

    assert problem.startswith("no handler thread has been free for 30 s") and "kill -USR1" in problem


@contextmanager
def beating(heartbeat: Heartbeat, pool: ThreadPoolExecutor) -> Iterator[asyncio.AbstractEventLoop]:
    """keep_beating in an event loop on its own thread, as kopf's; yields that loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    task = asyncio.run_coroutine_threadsafe(keep_beating(heartbeat, lambda: pool, INTERVAL), loop)
    try:
        yield loop
    finally:
        task.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _after_timeout() -> None:
    time.sleep(TIMEOUT * 2)


def test_a_running_loop_with_free_threads_stays_healthy() -> None:
    heartbeat = Heartbeat(timeout=TIMEOUT)
    with ThreadPoolExecutor(2) as pool, beating(heartbeat, pool):
        _after_timeout()

        assert heartbeat.problem() is None


def test_a_loop_blocked_by_a_synchronous_call_fails_liveness_and_recovers() -> None:
    heartbeat = Heartbeat(timeout=TIMEOUT)
    with ThreadPoolExecutor(2) as pool, beating(heartbeat, pool) as loop:
        loop.call_soon_threadsafe(time.sleep, TIMEOUT * 4)  # blocks the loop, as a sync call in a coroutine would
        _after_timeout()
        blocked = heartbeat.problem()
        time.sleep(TIMEOUT * 3)

        assert blocked and blocked.startswith("kopf's event loop has not run")
        assert heartbeat.problem() is None


def test_every_handler_thread_stuck_fails_liveness_while_the_loop_still_runs() -> None:
    heartbeat = Heartbeat(timeout=TIMEOUT)
    release = threading.Event()
    with ThreadPoolExecutor(2) as pool, beating(heartbeat, pool):
        stuck = [pool.submit(release.wait) for _ in range(2)]
        _after_timeout()
        problem = heartbeat.problem()
        release.set()
        for future in stuck:
            future.result(5)
        time.sleep(INTERVAL * 4)

        assert problem and problem.startswith("no handler thread has been free")
        assert heartbeat.problem() is None
