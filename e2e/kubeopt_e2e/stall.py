"""``kubeopt operator`` with stalls on cue, for the liveness e2e test (run as a script, never imported by kubeopt).

Two ways the operator stops reconciling while its process lives on, each while a file exists:

- ``KUBEOPT_E2E_STALL_LOOP=<file>``: a coroutine in kopf's event loop calls ``time.sleep`` until
  the file is gone, as a synchronous call made in async code would: watches, queues and timers
  all stop.
- ``KUBEOPT_E2E_STALL_RECONCILE=<file>``: every reconcile pass waits until the file is gone, as
  one blocked on a lock or on a request that never returns: kopf's handler threads fill up.

Production code has no such hook: this wraps ``build_registry`` and ``Reconciler._reconcile``
before the command line runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import kopf

from kubeopt import cli
from kubeopt.controller import main, reconcile

POLL = 0.1


def _wait_while(path: Path) -> None:
    while path.exists():
        time.sleep(POLL)


def _stall_the_loop(path: Path) -> None:
    original = main.build_registry

    def build_registry(*args: Any, **kwargs: Any) -> kopf.OperatorRegistry:
        registry = original(*args, **kwargs)
        tasks: set[asyncio.Task[None]] = set()

        async def block_on_cue() -> None:
            while True:
                _wait_while(path)  # synchronous on purpose: the loop stops here
                await asyncio.sleep(POLL)

        @kopf.on.startup(id="e2e-stall-loop", registry=registry)
        async def start(**_: Any) -> None:
            tasks.add(asyncio.create_task(block_on_cue()))

        return registry

    main.build_registry = build_registry  # type: ignore[assignment]


def _stall_reconciles(path: Path) -> None:
    original = reconcile.Reconciler._reconcile

    def stalled(self: reconcile.Reconciler, *args: Any, **kwargs: Any) -> None:
        _wait_while(path)
        original(self, *args, **kwargs)

    reconcile.Reconciler._reconcile = stalled  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("KUBEOPT_E2E_STALL_LOOP"):
        _stall_the_loop(Path(os.environ["KUBEOPT_E2E_STALL_LOOP"]))
    if os.environ.get("KUBEOPT_E2E_STALL_RECONCILE"):
        _stall_reconciles(Path(os.environ["KUBEOPT_E2E_STALL_RECONCILE"]))
    sys.exit(cli.main(sys.argv[1:]))
