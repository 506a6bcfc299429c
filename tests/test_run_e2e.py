"""`agenttop run --demo` as a user starts it: in a terminal, with live demo traffic."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import psutil
import pytest

from tests.test_process import free_port

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


class Terminal:
    """A child process on a pseudo-terminal of a fixed size, and what it has drawn."""

    def __init__(self, args: list[str], cols: int = 140, rows: int = 40) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols),
               "LINES": str(rows)}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.raw = b""

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:
                    return

    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read(0.5)
            if re.search(pattern, self.text(), re.IGNORECASE):
                return
        raise AssertionError(f"{pattern!r} never appeared; last output:\n{self.text()[-2000:]}")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end, reading what it draws meanwhile: a full terminal
        buffer would block its writes, and so its exit."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.1)
        return self.proc.wait(1)


@pytest.mark.timeout(180)
def test_run_demo_shows_layers_and_traces_and_quits_cleanly(tmp_path):
    db = tmp_path / "demo.db"
    port, http_port = free_port(), free_port()
    term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--demo", "--db", str(db),
                     "--grpc", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}"])
    try:
        parent = psutil.Process(term.proc.pid)
        for layer in ("prompt", "tool", "memory", "runtime", "auth"):
            term.wait_for(layer, timeout=60)
        children = parent.children(recursive=True)
        assert len(children) >= 2  # the receiver and the demo
        term.send("2")
        term.wait_for(r"invoke_agent", timeout=60)
        term.raw = b""
        term.send("q")
        term.wait_exit(60)
    finally:
        if term.proc.poll() is None:
            os.killpg(term.proc.pid, signal.SIGKILL)  # its own session: children too
        os.close(term.master)
    assert term.proc.returncode == 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"children left behind: {alive}"
    assert db.exists() and db.with_name(db.name + ".log").exists()
    assert f"OTLP/HTTP on 127.0.0.1:{http_port}" in db.with_name(db.name + ".log").read_text()


def test_children_stop_when_run_is_killed(tmp_path):
    port = free_port()
    term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--db", str(tmp_path / "k.db"),
                     "--grpc", f"127.0.0.1:{port}", "--http", "off"])
    try:
        term.wait_for("PROMPT", timeout=60)
        children = psutil.Process(term.proc.pid).children(recursive=True)
        assert children
        term.proc.kill()  # no chance to clean up
        term.proc.wait(30)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"children outlived a killed run: {alive}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(term.proc.pid, signal.SIGKILL)
        os.close(term.master)


def test_run_reports_a_busy_port_in_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "agenttop.cli", "run", "--db", str(tmp_path / "a.db"),
             "--grpc", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"agenttop: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_demo_never_writes_into_the_default_database(tmp_path):
    import socket

    with socket.socket() as busy:  # run stops right after choosing its files
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "agenttop.cli", "run", "--demo", "--grpc", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 1
    assert (tmp_path / "agenttop" / "demo.db.log").exists()
    assert not (tmp_path / "agenttop" / "agenttop.db.log").exists()


@pytest.mark.timeout(180)
def test_a_receiver_that_fails_after_the_ui_painted_is_one_line(tmp_path):
    """The UI paints before serve has started; if serve then fails to come up (here: the
    file already has a receiver), run exits with serve's reason in one line."""
    from tests.test_process import start_serve, wait_listening

    db, first_port = tmp_path / "a.db", free_port()
    first = start_serve(db, first_port)
    try:
        wait_listening(first, first_port)
        term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--db", str(db),
                         "--grpc", f"127.0.0.1:{free_port()}", "--http", "off"])
        assert term.wait_exit(120) == 1
        text = term.text()
        assert "agenttop: error:" in text and "receiver" in text.split("agenttop: error:")[-1]
    finally:
        first.terminate()
        first.wait(30)
