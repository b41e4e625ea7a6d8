"""Processes on loopback: free ports, logged child processes, waiting with a deadline."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGTERM when the test process dies (Linux only)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Process:
    """One component running as its own process, its stdout and stderr in ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._log_file: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )

    def running(self) -> bool:
        return self.popen.poll() is None

    def failure(self, what: str) -> StartupError:
        state = "running" if self.running() else f"exited with code {self.popen.returncode}"
        return StartupError(f"{self.name} {what} ({state}); last lines of {self.log}:\n{log_tail(self.log)}")

    def stop(self, grace: float = 15.0) -> None:
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        with contextlib.suppress(OSError):
            self._log_file.close()


def wait_until(
    what: str, check: Callable[[], bool], *, process: Process | None, timeout: float, interval: float = 0.2
) -> None:
    """Poll ``check`` until it returns true; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.running():
            raise process.failure(f"exited while waiting for {what}")
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            if process is not None:
                raise process.failure(f"not ready after {timeout:.0f}s waiting for {what}")
            raise StartupError(f"not ready after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
