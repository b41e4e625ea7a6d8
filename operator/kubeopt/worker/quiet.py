"""Keep the terminal to kubeopt's progress, errors and the table; library chatter goes to a log file.

torch, onnxscript and friends warn a lot (training-mode exports, missing torchvision kernels, pytree
deprecations) through Python warnings and torch's own stderr handlers. Those lines say nothing a
kubeopt user can act on, so they go to ``--log-file`` at DEBUG; only ERRORs of any logger reach the
terminal besides kubeopt's own INFO lines.

torch is never imported here: imported before TensorFlow, its LLVM aborts a TensorFlow run
("Option registered more than once"). torch gives its loggers stderr handlers of their own when
it is imported, so ``tame_torch`` takes them off once the pipeline has imported torch:
``frameworks.require`` calls it after every import, and it does nothing until torch is loaded.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _TerminalFilter(logging.Filter):
    """kubeopt's own lines at INFO and above, and errors of any logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "kubeopt" or record.name.startswith("kubeopt.")
        return record.levelno >= logging.ERROR or (own and record.levelno >= logging.INFO)


def route_library_output(log_file: Path) -> Path:
    """Send every logger and Python warning to ``log_file`` at DEBUG; the terminal keeps kubeopt's lines.

    Returns the file written: ``log_file``, or one in the temporary folder when ``log_file`` cannot
    be created (a read-only current folder must not stop a run)."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file)
    except OSError:
        log_file = Path(tempfile.gettempdir()) / log_file.name
        to_file = logging.FileHandler(log_file)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    to_file.setLevel(logging.DEBUG)
    to_file.setFormatter(logging.Formatter(FORMAT))
    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(_TerminalFilter())
    terminal.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(to_file)
    root.addHandler(terminal)
    root.setLevel(logging.DEBUG)
    logging.getLogger("kubeopt").setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    _routed.append(log_file)
    tame_torch()
    return log_file


_routed: list[Path] = []  # the log file, once route_library_output ran in this process


def tame_torch() -> None:
    """Take torch's own stderr handlers off its registered loggers ("torch", "torch._dynamo", ...;
    ``torch._logging._init_logs`` adds them with ``propagate=False``) and let their records
    propagate to the root's handlers. Does nothing unless library output is routed and torch is
    already imported: it never imports torch itself. Cheap, so it runs after every import."""
    internal = sys.modules.get("torch._logging._internal")
    if not _routed or internal is None:
        return
    for name in internal.log_registry.get_log_qnames():
        logger = logging.getLogger(name)
        if logger.handlers or not logger.propagate:
            internal._clear_handlers(logger)
            logger.propagate = True  # levels stay torch's (WARNING unless TORCH_LOGS says more)
