"""The worker's entry: run the pipeline, print the table, write the termination message, exit."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from kubeopt.api.reasons import EXIT_CODES, Reason
from kubeopt.api.spec import ModelOptimization
from kubeopt.api.summary import Summary
from kubeopt.worker.backends.registry import default_registry
from kubeopt.worker.device import resolve_device
from kubeopt.worker.errors import WorkerError
from kubeopt.worker.pipeline import RunSettings, run_optimization
from kubeopt.worker.progress import LiveProgress, plain_progress
from kubeopt.worker.signals import Interrupted, interruptible
from kubeopt.worker.table import render_table
from kubeopt.worker.termination import build_summary, write_termination_message

log = logging.getLogger("kubeopt.worker")


def fail_early(reason: Reason, message: str, termination_log: Path) -> int:
    """Report a failure that happened before the pipeline could start; return its exit code."""
    sys.stderr.write(f"kubeopt: {reason.value}: {message}\n")
    write_termination_message(Summary(status="Failed", reason=reason, message=message[:1000]), termination_log)
    return EXIT_CODES[reason]


@contextlib.contextmanager
def _progress(resource: ModelOptimization, args: argparse.Namespace) -> Iterator[Callable[[str], None]]:
    """Live progress on a terminal (stage, target, elapsed, redrawn in place), plain log lines otherwise."""
    if args.quiet:
        yield lambda _: None
    elif sys.stderr.isatty():
        targets = [t.name for t in resource.spec.targets if args.target in (None, t.name)]
        with LiveProgress(sys.stderr, targets) as live:
            yield live
    else:
        yield plain_progress


def run_and_report(resource: ModelOptimization, args: argparse.Namespace, base_dir: Path) -> int:
    """Run the resource; exit 0 when a target succeeded, else the first failure's exit code."""
    try:
        with interruptible(), _progress(resource, args) as progress:
            device = resolve_device(args.device, resource.spec.resources.gpu)
            settings = RunSettings(device=device, workspace=args.workspace, only_target=args.target,
                                   base_dir=base_dir, progress=progress)
            outcome = run_optimization(resource, settings, default_registry())
    except Interrupted as stop:
        return fail_early(Reason.INTERRUPTED, f"{stop.signal_name} stopped the run; its workspace was removed and "
                          "no target's current.json moved to it (run it again, or raise "
                          "spec.activeDeadlineSeconds if the Job's deadline sent it)", args.termination_log)
    except WorkerError as error:
        return fail_early(error.reason, error.message, args.termination_log)
    except Exception as error:  # a bug: keep the traceback in the log, still tell the controller
        log.exception("internal error")
        return fail_early(Reason.INTERNAL_ERROR, f"{type(error).__name__}: {error}", args.termination_log)
    best = outcome.best.target.name if outcome.best else None
    sys.stdout.write(render_table(outcome.results, best) + "\n")
    if outcome.report_uri:
        sys.stdout.write(f"report: {outcome.report_uri}\n")
    summary = build_summary(outcome.results, outcome.batch, best, outcome.report["device"], outcome.report_uri,
                            outcome.failure.reason if outcome.failure else None,
                            outcome.failure.message if outcome.failure else "")
    write_termination_message(summary, args.termination_log)
    if summary.reason is not Reason.SUCCEEDED:
        sys.stderr.write(f"kubeopt: {summary.reason.value}: {summary.message}\n")
    return EXIT_CODES.get(summary.reason, EXIT_CODES[Reason.INTERNAL_ERROR])
