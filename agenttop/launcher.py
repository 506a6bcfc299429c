"""``agenttop run``: the receiver (and the demo) as child processes, the TUI in front.

The receiver runs in its own process so that ingest never competes with the UI for the
GIL. Its output goes to a log file beside the database, not to the terminal the TUI
draws on. Whatever way the TUI ends, the children are stopped (SIGTERM, so the receiver
flushes) and reaped; none is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agenttop.config import parse_address

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class LaunchError(Exception):
    """A child could not be started; the message is the child's own one-line reason."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agenttop.cli", *args]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("agenttop: error:")]
    if errors:
        return errors[-1].removeprefix("agenttop: error: ")
    return lines[-1] if lines else "it exited without a message"


class Children:
    """The child processes of one ``agenttop run``."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.procs: list[subprocess.Popen] = []

    def start(self, args: Sequence[str]) -> subprocess.Popen:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                _cli(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.procs.append(proc)
        return proc

    def start_serve(self, db: Path, grpc: str, extra: Sequence[str] = ()) -> subprocess.Popen:
        """Start ``serve`` and wait until it listens; LaunchError with its reason if not."""
        host, port = parse_address(grpc)
        if port == 0:
            raise LaunchError("agenttop run needs a fixed --grpc port for the exporters")
        proc = self.start(["serve", "--db", str(db), "--grpc", grpc, *extra])
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(_last_error(self.log))
            if _listening(host if host not in ("0.0.0.0", "::") else "127.0.0.1", port):
                return proc
            time.sleep(0.05)
        raise LaunchError(f"agenttop serve did not start listening on {grpc} in time")

    def stop(self) -> None:
        """SIGTERM every child (newest first), wait, and kill what does not stop."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def log_path(db: Path) -> Path:
    return db.with_name(db.name + ".log")
