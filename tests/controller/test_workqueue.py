"""The reconcile work queue: one entry per resource, changes never lost, a bounded number at once."""

from __future__ import annotations

import asyncio
import contextvars

from kubeopt.controller.handlers import WorkQueue

TRIGGER: contextvars.ContextVar[str] = contextvars.ContextVar("trigger")


def test_ten_changes_queued_before_a_resources_turn_are_one_reconcile() -> None:
    done: list[str] = []

    async def scenario() -> None:
        async def work(uid: str) -> None:
            done.append(uid)

        queue = WorkQueue(2, work)
        for _ in range(10):
            queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        await queue.join()
        await queue.stop()

    asyncio.run(scenario())
    assert sorted(done) == ["a", "b"]


def test_a_change_during_a_resources_reconcile_queues_it_once_more() -> None:
    done: list[str] = []

    async def scenario() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def work(uid: str) -> None:
            done.append(uid)
            if len(done) == 1:
                started.set()
                await release.wait()

        queue = WorkQueue(1, work)
        queue.add("a")
        await started.wait()
        queue.add("a")  # changed while it was being reconciled
        release.set()
        await queue.join()
        await queue.stop()

    asyncio.run(scenario())
    assert done == ["a", "a"]


def test_a_failing_reconcile_leaves_the_worker_running_for_the_next_resource() -> None:
    done: list[str] = []

    async def scenario() -> None:
        async def work(uid: str) -> None:
            if uid == "bad":
                raise RuntimeError("boom")
            done.append(uid)

        queue = WorkQueue(1, work)
        queue.add("bad")
        queue.add("good")
        await queue.join()
        await queue.stop()

    asyncio.run(scenario())
    assert done == ["good"]


def test_no_more_reconciles_than_workers_run_at_once_and_all_finish() -> None:
    seen = {"now": 0, "peak": 0, "done": 0}

    async def scenario() -> None:
        async def work(uid: str) -> None:
            seen["now"] += 1
            seen["peak"] = max(seen["peak"], seen["now"])
            await asyncio.sleep(0.01)
            seen["now"] -= 1
            seen["done"] += 1

        queue = WorkQueue(3, work)
        for i in range(20):
            queue.add(f"r{i}")
        await queue.join()
        await queue.stop()

    asyncio.run(scenario())
    assert (seen["peak"], seen["done"]) == (3, 20)


def test_workers_carry_the_context_of_the_handler_that_started_them() -> None:
    """kopf.event reads kopf's context variables: the reconciles must see them."""
    seen: list[str] = []

    async def scenario() -> None:
        async def work(uid: str) -> None:
            seen.append(TRIGGER.get("unset"))

        queue = WorkQueue(1, work)
        TRIGGER.set("kopf")
        queue.add("a")
        await queue.join()
        await queue.stop()

    asyncio.run(scenario())
    assert seen == ["kopf"]
