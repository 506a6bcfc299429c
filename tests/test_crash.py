"""`agenttop serve` killed with SIGKILL at random moments, restarted on the same file each time.

Clients keep sending through every crash, resending each request until it is acknowledged
(so a request committed just before a kill is sent again after it). At the end every
acknowledged span is stored exactly once, the file is intact, the trace summaries and
per-minute rollups agree with the spans, and no process of any crashed receiver is left.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import grpc
import psutil
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.test_bad_input import TRACES, traces_request
from tests.test_body_budget import retry_delay
from tests.test_process import free_port, read_as_user, start_serve, wait_listening

SEED = 20240611
# When each kill lands: while the receiver starts (opening the file, starting its workers),
# while it takes load, or while it stops on SIGTERM and flushes what it accepted.
PHASES = ("startup", "load", "shutdown", "load", "startup", "load")
MARKER = "AGENTTOP_CRASH_TEST_RUN"  # in the environment of every process a receiver starts
# Codes the OTLP exporters resend on. A call cut by a crash ends UNAVAILABLE, or CANCELLED
# when the receiver had begun to stop.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.DEADLINE_EXCEEDED}

# Children of a span root: (name, attributes) giving several layers in the rollups.
CHILDREN = (
    ("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
    ("execute_tool lookup", {"gen_ai.operation.name": "execute_tool"}),
    ("retrieval kb", {"gen_ai.operation.name": "retrieval"}),
    ("auth check", {"http.response.status_code": 200}),
)


def trace(rng: random.Random, start_ns: int, size: int = 10) -> list[Span]:
    trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
    spans = [Span(trace_id=trace_id, span_id=root_id, name="invoke_agent support",
                  kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start_ns,
                  end_time_unix_nano=start_ns + 10**9)]
    for i in range(size - 1):
        name, attrs = CHILDREN[i % len(CHILDREN)]
        failed = rng.random() < 0.1
        spans.append(Span(
            trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root_id, name=name,
            start_time_unix_nano=start_ns + i * 10**7,
            end_time_unix_nano=start_ns + i * 10**7 + rng.randrange(10**6, 10**9),
            attributes=[KeyValue(key=k, value=AnyValue(string_value=str(v)))
                        for k, v in attrs.items()],
            status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK),
        ))
    return spans


class Senders:
    """Client threads sending 50-span requests, each resent until acknowledged."""

    def __init__(self, port: int, count: int = 3) -> None:
        self.port = port
        self.sent: set[tuple[str, str]] = set()
        self.acked: set[tuple[str, str]] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._no_new = threading.Event()
        self._abandon = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(random.Random(SEED + n),))
                         for n in range(count)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def finish(self, timeout: float = 60) -> None:
        """Send nothing new; wait until what was sent is acknowledged."""
        self._no_new.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._abandon.set()
        assert not any(t.is_alive() for t in self._threads), "requests never acknowledged"

    def abandon(self) -> None:
        self._no_new.set()
        self._abandon.set()
        for t in self._threads:
            t.join(30)

    def _run(self, rng: random.Random) -> None:
        # Reconnect quickly to each restarted receiver (gRPC's default backoff reaches 2 min).
        options = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 300)]
        with grpc.insecure_channel(f"127.0.0.1:{self.port}", options=options) as channel:
            export = channel.unary_unary(TRACES)
            while not self._no_new.is_set():
                now = time.time_ns()
                spans = [s for i in range(5) for s in trace(rng, now + i * 10**9)]
                ids = {(s.trace_id.hex(), s.span_id.hex()) for s in spans}
                body = traces_request(*spans)
                with self._lock:
                    self.sent |= ids
                while not self._abandon.is_set():
                    try:
                        export(body, timeout=5)
                    except grpc.RpcError as e:
                        if e.code() not in RETRYABLE:
                            self.errors.append(f"{e.code().name}: {e.details()}")
                            return
                        time.sleep(retry_delay(e) or 0.05)
                        continue
                    with self._lock:
                        self.acked |= ids
                    break


def leftovers(run: str) -> list[psutil.Process]:
    """Processes started by this test's receivers that are still running."""
    found = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(MARKER) == run and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def wait_all_gone(run: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (alive := leftovers(run)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in alive:
        p.kill()
    assert not alive, f"orphaned after the kill: {[' '.join(p.cmdline()) for p in alive]}"


def crash_round(db: Path, port: int, phase: str, rng: random.Random, run: str) -> None:
    proc = start_serve(db, port)
    try:
        if phase == "startup":
            time.sleep(rng.uniform(0.05, 1.2))  # serve takes ~1.5 s to listen here
        else:
            wait_listening(proc, port)
            time.sleep(rng.uniform(0.3, 2.0))
            if phase == "shutdown":
                proc.send_signal(signal.SIGTERM)
                time.sleep(rng.uniform(0.0, 0.15))
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    wait_all_gone(run)


def check_consistency(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    duplicates = conn.execute("SELECT trace_id, span_id FROM spans GROUP BY trace_id, span_id "
                              "HAVING count(*) > 1").fetchall()
    assert not duplicates
    wrong_summaries = conn.execute("""
        SELECT s.trace_id FROM (
            SELECT trace_id, count(*) AS n, sum(status_code = 2 OR failure IS NOT NULL) AS e,
                   min(start_ns) AS first, max(end_ns) AS last
            FROM spans GROUP BY trace_id) AS s
        LEFT JOIN traces AS t USING (trace_id)
        WHERE t.span_count IS NOT s.n OR t.error_count IS NOT s.e
           OR t.start_ns IS NOT s.first OR t.end_ns IS NOT s.last
        UNION ALL
        SELECT trace_id FROM traces WHERE trace_id NOT IN (SELECT trace_id FROM spans)
    """).fetchall()
    assert not wrong_summaries
    by_minute = ("SELECT start_ns / 60000000000, layer, service, count(*), count(failure) "
                 "FROM spans GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    rollups = ("SELECT minute, layer, service, spans, failures FROM layer_minutes "
               "ORDER BY 1, 2, 3")
    assert conn.execute(rollups).fetchall() == conn.execute(by_minute).fetchall()
    durations = ("SELECT minute, layer, service, sum(count) FROM layer_minute_durations "
                 "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    counts = [row[:4] for row in conn.execute(by_minute)]
    assert conn.execute(durations).fetchall() == counts


def test_acknowledged_spans_survive_kill_9_at_random_moments(tmp_path, monkeypatch):
    db, port, run = tmp_path / "crash.db", free_port(), uuid.uuid4().hex
    monkeypatch.setenv(MARKER, run)
    rng = random.Random(SEED)
    senders = Senders(port)
    senders.start()
    try:
        for phase in PHASES:
            crash_round(db, port, phase, rng, run)
        # A last, clean run: every request sent so far is acknowledged, then a normal stop.
        proc = start_serve(db, port)
        try:
            wait_listening(proc, port)
            senders.finish()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        wait_all_gone(run)
    finally:
        senders.abandon()

    assert not senders.errors
    assert len(senders.acked) >= 1000, "too little was acknowledged to prove anything"
    assert senders.acked == senders.sent  # (finish() waited for every one)
    conn = read_as_user(db)
    try:
        stored = set(conn.execute("SELECT trace_id, span_id FROM spans"))
        assert stored == senders.acked, (f"{len(senders.acked - stored)} acknowledged spans "
                                         f"lost, {len(stored - senders.acked)} never sent")
        check_consistency(conn)
    finally:
        conn.close()


def test_decoders_that_cannot_start_are_one_clear_error():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from agenttop.otlp.decode import DecoderPool, DecoderStartError

    class Broken(DecoderPool):
        def _new_pool(self) -> ProcessPoolExecutor:  # each worker dies as it starts
            return ProcessPoolExecutor(self.workers, initializer=os._exit, initargs=(3,),
                                       mp_context=multiprocessing.get_context("spawn"))

    pool = Broken(1)
    with pytest.raises(DecoderStartError, match=r"^cannot start 1 decoding worker processes "
                                                r"\(--decoders\): .+"):
        pool.warm_up()
