"""``agenttop run``: the receiver (and the demo) as child processes, the TUI in front.

The receiver runs in its own process so that ingest never competes with the UI for the
GIL. Its output goes to a log file beside the database, not to the terminal the TUI
draws on. Whatever way the TUI ends, the children are stopped (SIGTERM, so the receiver
flushes) and reaped; none is left behind.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agenttop.config import bind_error, parse_address

STOP_TIMEOUT_S = 20.0


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when ``run`` dies however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class LaunchError(Exception):
    """A child could not be started; the message is the child's own one-line reason."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agenttop.cli", *args]


READY = "agenttop serve: OTLP/gRPC on"


def _new_text(log: Path, offset: int) -> str:
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _last_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("agenttop: error:")]
    if errors:
        return errors[-1].removeprefix("agenttop: error: ")
    return lines[-1] if lines else "it exited without a message"


def exit_reason(proc: subprocess.Popen) -> str | None:
    """None while ``proc`` runs; else how it ended: "exited with code 1", "killed by SIGKILL"."""
    code = proc.poll()
    if code is None:
        return None
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Serve:
    """The ``serve`` child of a run, and whether it came up.

    Readiness is serve's own line in its log, not a successful connect: another program
    already listening on the port would answer a connect too.
    """

    def __init__(self, proc: subprocess.Popen, log: Path, offset: int) -> None:
        self.proc = proc
        self.log = log
        self.offset = offset
        self.ready = False

    def failed_start(self) -> str | None:
        """Its one-line reason when it ended before it listened; None while it starts or
        once it listens."""
        if self.ready:
            return None
        exited = self.proc.poll() is not None  # before reading: its last words are written
        text = _new_text(self.log, self.offset)
        if READY in text:
            self.ready = True
            return None
        return _last_error(text) if exited else None


def port_in_use(address: str) -> str | None:
    """``cannot listen on HOST:PORT: Address already in use`` when another program listens
    there: said at once, where serve would say it after starting."""
    host, port = parse_address(address)
    if port == 0:
        return None
    try:
        error = bind_error(host, port)
    except OSError:
        return None  # a host that does not resolve: serve says so
    if error is not None and error.errno == errno.EADDRINUSE:
        return f"cannot listen on {address}: {os.strerror(error.errno)}"
    return None


class Children:
    """The child processes of one ``agenttop run``."""

    def __init__(self, log: Path) -> None:
        self.log = log
        log.touch(mode=0o600)  # from the start: the place to look when anything goes wrong
        self.procs: list[subprocess.Popen] = []

    def start(self, args: Sequence[str]) -> subprocess.Popen:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                _cli(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)
        return proc

    def start_serve(self, args: Sequence[str], grpc: str) -> Serve:
        """Start ``serve`` with ``args`` (its options, listening for OTLP/gRPC on ``grpc``),
        without waiting for it: the UI paints meanwhile and says it is coming up."""
        if parse_address(grpc)[1] == 0:
            raise LaunchError("agenttop run needs a fixed --grpc port for the exporters")
        offset = self.log.stat().st_size if self.log.exists() else 0
        return Serve(self.start(["serve", *args]), self.log, offset)

    def stop(self) -> None:
        """Stop the children one by one, newest first, killing any that do not stop.

        One by one: the demo flushes its last spans while the receiver still listens.
        """
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def log_path(db: Path) -> Path:
    return db.with_name(db.name + ".log")
