"""`agenttop serve` as a user runs it: a subprocess, its messages, signals and crashes."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from agenttop.store.schema import LATEST_VERSION
from tests.test_bad_input import TRACES, span, traces_request


def read_as_user(path: Path) -> sqlite3.Connection:
    """Python's own sqlite3, as users query the file (the writer is another process)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(db: Path, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db),
         "--grpc", f"127.0.0.1:{port}", "--http", "off", "--decoders", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("serve never listened")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agenttop.cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_start_message_and_clean_stop_on_sigterm(tmp_path):
    db, port = tmp_path / "a.db", free_port()
    proc = start_serve(db, port)
    wait_listening(proc, port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary(TRACES)(traces_request(span(1)), timeout=30)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"OTLP/gRPC on 127.0.0.1:{port}" in err and str(db) in err
    assert "Traceback" not in err
    # Everything was checkpointed into the main file on the way out.
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    assert read_as_user(db).execute("SELECT count(*) FROM spans").fetchone()[0] == 1


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--db", str(tmp_path / "a.db"), "--grpc", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"agenttop: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize("setup, expected", [
    (lambda p: p.write_text("hello, not a database"), "is not an agenttop database"),
    (lambda p: __import__("sqlite3").connect(p).execute("CREATE TABLE t (x)"),
     "is an SQLite file but not an agenttop database"),
])
def test_unusable_database_is_one_clear_line(tmp_path, setup, expected):
    path = tmp_path / "x.db"
    setup(path)
    before = path.read_bytes() if path.is_file() else None
    result = run_cli("serve", "--db", str(path), "--grpc", "127.0.0.1:0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    if before is not None:
        assert path.read_bytes() == before  # never overwritten


def test_newer_schema_is_refused(tmp_path):
    import sqlite3

    from agenttop.store.schema import APPLICATION_ID

    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.execute("CREATE TABLE spans (x)")
    conn.commit()
    conn.close()
    result = run_cli("serve", "--db", str(path), "--grpc", "127.0.0.1:0")
    assert result.returncode == 1
    assert "written by a newer agenttop" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_directory_is_one_clear_line(tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/agenttop-test/x.db")  # not creatable even by root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "sub" / "x.db"
    result = run_cli("serve", "--db", str(target), "--grpc", "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.startswith("agenttop: error: cannot create directory")


def test_bad_options_are_usage_errors(tmp_path):
    result = run_cli("serve", "--db", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr
    result = run_cli("serve", "--grpc", "nowhere")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
    result = run_cli("serve", "--max-message-mb", "0")
    assert result.returncode == 2 and "--max-message-mb" in result.stderr


def test_help_explains_serve():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option in ("--db", "--grpc", "--max-message-mb", "--queue-spans"):
        assert option in result.stdout


def test_every_acknowledged_span_survives_kill_9(tmp_path):
    db, port = tmp_path / "crash.db", free_port()
    proc = start_serve(db, port)
    wait_listening(proc, port)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        rng = random.Random(n)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(TRACES)
            while not stop.is_set():
                spans = [span(i, trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
                         for i in range(50)]
                try:
                    export(traces_request(*spans), timeout=10)
                except grpc.RpcError:
                    return
                with lock:
                    acked.extend(s.span_id.hex() for s in spans)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    proc.stdout.close()
    proc.stderr.close()

    assert len(acked) > 500, "too little was sent before the kill to prove anything"
    stored = {r[0] for r in read_as_user(db).execute("SELECT span_id FROM spans")}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged spans lost"
    # The file still opens for writing after the crash.
    result = subprocess.run(
        [sys.executable, "-c", f"from agenttop.store import open_writer; open_writer({str(db)!r})"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_second_serve_on_the_same_file_refuses_naming_the_first(tmp_path):
    db = tmp_path / "agenttop.db"
    port = free_port()
    first = start_serve(db, port)
    try:
        wait_listening(first, port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its heartbeat says where it listens
            with read_as_user(db) as conn:
                row = conn.execute("SELECT status FROM receiver").fetchone()
            if row and "127.0.0.1" in row[0]:
                break
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db), "--grpc",
             f"127.0.0.1:{free_port()}", "--http", "off"],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert (f"is already written by agenttop serve (pid {first.pid}, on "
                f"127.0.0.1:{port}") in second.stderr
        assert second.stderr.count("\n") == 1  # one line
        # `import` still takes turns with the running receiver.
        export = tmp_path / "one.json"
        export.write_text('{"resourceSpans": []}\n')
        imported = run_cli("import", "--db", str(db), str(export))
        assert imported.returncode == 0, imported.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    # Once it is gone, the file is free again.
    again = start_serve(db, port)
    try:
        wait_listening(again, port)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(30)


def test_a_token_with_a_trailing_newline_is_trimmed_with_a_warning(tmp_path):
    # As a token mounted from a secret file arrives; clients send it trimmed.
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AGENTTOP_TOKEN": "s3cret-t0ken\n"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(tmp_path / "a.db"),
         "--grpc", f"127.0.0.1:{port}", "--http", "off", "--decoders", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_listening(proc, port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            channel.unary_unary(TRACES)(traces_request(span(1)), timeout=30,
                                        metadata=[("authorization", "Bearer s3cret-t0ken")])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert "the token has whitespace around it" in stderr


def test_a_failed_start_leaves_no_database_file(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "new" / "agenttop.db"
        result = run_cli("serve", "--db", str(db), "--grpc", f"127.0.0.1:{port}",
                         "--http", "off", "--decoders", "1")
    assert result.returncode == 1 and "127.0.0.1" in result.stderr
    assert not db.exists() and list(db.parent.iterdir()) == []


def test_serve_says_it_created_the_database_directory(tmp_path):
    db = tmp_path / "missing" / "dir" / "agenttop.db"
    port = free_port()
    proc = start_serve(db, port)
    try:
        wait_listening(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert f"agenttop serve: created the directory {db.parent}" in stderr
