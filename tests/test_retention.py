"""Retention: what pruning by age and by size removes and keeps, in bounded steps through the
real writer, the space given back to the file system, and the CLI options and status."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from agenttop.analysis.monitor import record
from agenttop.cli import main
from agenttop.config import ServeSettings
from agenttop.otlp import audit
from agenttop.otlp.decode import decode
from agenttop.serve import BackgroundService
from agenttop.store import open_writer
from agenttop.store import retention as retention_module
from agenttop.store.audit import record_refused
from agenttop.store.db import migrate, scalar
from agenttop.store.retention import Retention, file_bytes, page_sizes, prepare, prune_by_age
from agenttop.store.rows import MINUTE_NS
from agenttop.store.status import read_status
from agenttop.store.writer import Writer
from tests.conftest import read_db, serve_settings
from tests.tui.fixtures import (
    NOW,
    alert_transition,
    hex_trace,
    log_record,
    logs_request,
    metrics_request,
    span,
    traces_request,
)

S = 10**9
HOUR = 3600 * S
DAY = 86400 * S
MS = 10**6
WEEK_S = 7 * 86400


class Store:
    """A started writer on a new file whose clock (``traces.updated_ns``) the test sets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = NOW
        self.writer = Writer(open_writer(path, synchronous="NORMAL"), clock=lambda: self.now)
        self.writer.start()

    def ingest(self, signal: str, body: bytes, received_ns: int) -> None:
        """Through ``try_submit``, as the receiver does; returns once committed."""
        self.now = received_ns
        done: Future = Future()
        assert self.writer.try_submit(decode(signal, body, received_ns), done.set_result)
        assert done.result(30) is None

    def retention(self, **settings) -> Retention:
        return Retention(self.writer, self.path, clock=lambda: NOW, **settings)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


def email(n: int) -> dict:
    return {"user.email": f"user{n}@example.com"}


def gauge(*times_ns: int) -> bytes:
    points = [NumberDataPoint(time_unix_nano=t, as_double=1.0) for t in times_ns]
    return metrics_request("svc", [Metric(name="queue_depth", gauge=Gauge(data_points=points))])


def untraced_log(at_ns: int, body: str) -> bytes:
    record_ = log_record("none", "none", at_ns=at_ns, body=body)
    record_.ClearField("trace_id")
    record_.ClearField("span_id")
    return logs_request("svc", [record_])


def column(conn: apsw.Connection, sql: str) -> list:
    return [row[0] for row in conn.execute(sql)]


def test_age_prunes_whole_old_traces_their_logs_findings_and_older_rows(store, db_path):
    old, spanning, new = NOW - 9 * DAY, NOW - 8 * DAY, NOW - HOUR
    store.ingest("traces", traces_request([("svc", [
        span("old", "root", base_ns=old, duration_ms=100, attributes=email(1)),
        span("old", "child", parent="root", base_ns=old, start_ms=10, duration_ms=20)])]), old)
    # Started (and has a child that ended) before the cutoff, ended after it: kept whole.
    store.ingest("traces", traces_request([("svc", [
        span("spanning", "root", base_ns=spanning, duration_ms=2 * 86400 * 1000),
        span("spanning", "early", parent="root", base_ns=spanning, duration_ms=5,
             attributes=email(2))])]), NOW - 6 * DAY)
    store.ingest("traces", traces_request([("svc", [span("new", "root", base_ns=new)])]), new)
    store.ingest("logs", logs_request("svc", [
        log_record("old", "root", at_ns=old + 50 * MS, body="of the old trace"),
        log_record("spanning", "early", at_ns=spanning + MS, body="of the spanning trace")]),
        NOW - 6 * DAY)
    store.ingest("logs", untraced_log(NOW - 8 * DAY, "old, mail me at a@example.com"),
                 NOW - 8 * DAY)
    store.ingest("logs", untraced_log(new, "new, mail me at b@example.com"), new)
    # Old by its timestamp, but received within the retention (a replay, a slow clock).
    store.ingest("logs", untraced_log(NOW - 30 * DAY, "replayed"), new)
    store.ingest("metrics", gauge(NOW - 8 * DAY), NOW - 8 * DAY)
    store.ingest("metrics", gauge(new), new)

    def alerts_and_audit(conn: apsw.Connection) -> None:
        ended = dict(started_ns=NOW - 10 * DAY, value=0.5, message="m")
        record(conn, [
            alert_transition("tool-error-rate", "firing", at_ns=NOW - 10 * DAY, **ended),
            alert_transition("tool-error-rate", "resolved", at_ns=NOW - 9 * DAY, **ended),
            alert_transition("auth-failures", "firing", at_ns=NOW - 10 * DAY, **ended),
            alert_transition("memory-failures", "firing", started_ns=NOW - 3 * DAY,
                             at_ns=NOW - 3 * DAY, value=1.0, message="m"),
            alert_transition("memory-failures", "resolved", started_ns=NOW - 3 * DAY,
                             at_ns=NOW - 2 * DAY, value=0.0, message="m")])
        for at in (NOW - 8 * DAY, new):
            record_refused(conn, [(at, "ipv4:10.0.0.7", "traces", audit.WRONG_TOKEN, 1)])

    store.writer.call(alerts_and_audit).result(10)

    keep = store.retention(retention_s=WEEK_S, max_db_bytes=None)
    keep.run_once()

    conn = read_db(db_path)
    assert set(column(conn, "SELECT trace_id FROM traces")) == {
        hex_trace("spanning"), hex_trace("new")}
    assert sorted(column(conn, "SELECT name FROM spans")) == ["early", "root", "root"]
    assert sorted(column(conn, "SELECT body FROM logs")) == [
        "new, mail me at [EMAIL]", "of the spanning trace", "replayed"]
    findings = [(r[0], r[1]) for r in conn.execute("SELECT trace_id, location FROM findings")]
    assert sorted(findings, key=str) == sorted(
        [(hex_trace("spanning"), "user.email"), (None, "body")], key=str)
    assert column(conn, "SELECT time_ns FROM metric_points") == [new]
    # Rollup minutes go below the cutoff, but not where a kept trace still has spans.
    minutes = set(column(conn, "SELECT minute FROM layer_minutes"))
    assert minutes == {spanning // MINUTE_NS, new // MINUTE_NS}
    assert set(column(conn, "SELECT minute FROM layer_minute_durations")) == minutes
    assert sorted(column(conn, "SELECT rule || ':' || state FROM alerts")) == [
        "auth-failures:firing", "memory-failures:resolved"]
    assert column(conn, "SELECT time_ns FROM audit") == [new]
    assert keep.pruned_traces == 1 and keep.last_prune_ns == NOW
    conn.close()

    # A month later everything has gone but the episode that still fires.
    later = Retention(store.writer, db_path, retention_s=WEEK_S, max_db_bytes=None,
                      clock=lambda: NOW + 30 * DAY)
    later.run_once()
    conn = read_db(db_path)
    for table in ("spans", "traces", "logs", "findings", "metric_points", "layer_minutes",
                  "layer_minute_durations", "audit"):
        assert scalar(conn, f"SELECT count(*) FROM {table}") == 0, table
    assert column(conn, "SELECT rule FROM alerts") == ["auth-failures"]
    assert later.pruned_traces == 2


def test_a_step_removes_whole_traces_up_to_its_span_budget(store, db_path, monkeypatch):
    monkeypatch.setattr(retention_module, "SPANS_PER_STEP", 5)
    base = NOW - 10 * DAY
    for i, size in enumerate([3, 3, 8, 1]):
        trace = f"t{i}"
        spans = [span(trace, "root", base_ns=base + i * S)]
        spans += [span(trace, f"c{k}", parent="root", base_ns=base + i * S, start_ms=k)
                  for k in range(size - 1)]
        store.ingest("traces", traces_request([("svc", spans)]), base)

    def step(conn: apsw.Connection) -> tuple[int, int]:
        done = prune_by_age(conn, NOW - 7 * DAY, NOW)
        return done.traces, scalar(conn, "SELECT count(*) FROM spans")

    # 3 + 3 > 5: one trace; 8 > 5 alone: still whole; then the last one.
    assert [store.writer.call(step).result(10) for _ in range(4)] == [
        (1, 12), (1, 9), (1, 1), (1, 0)]
    assert store.writer.call(step).result(10) == (0, 0)


def fill(store: Store, traces: int, at_ns: int, spans: int = 10) -> None:
    payload = {"payload": "x" * 1000}
    for i in range(traces):
        base = at_ns + i * S
        batch = [span(f"fill-{at_ns}-{i}", "root", base_ns=base, attributes=payload)]
        batch += [span(f"fill-{at_ns}-{i}", f"c{k}", parent="root", base_ns=base, start_ms=k,
                       attributes=payload) for k in range(spans - 1)]
        store.ingest("traces", traces_request([("svc", batch)]), NOW)


def test_size_limit_prunes_the_oldest_and_gives_the_space_back(store, db_path):
    fill(store, 300, NOW - 2 * HOUR)
    fill(store, 100, NOW - HOUR)
    before = file_bytes(db_path)
    limit = 2_000_000
    assert before > 2 * limit
    keep = store.retention(retention_s=None, max_db_bytes=limit)
    keep.run_once()

    live, free = store.writer.call(page_sizes).result(10)
    assert live <= limit * 7 / 8 * retention_module.LOW_WATER
    assert free < limit / 8  # given back: nearly no free pages left in the file
    assert file_bytes(db_path) <= limit
    conn = read_db(db_path)
    starts = column(conn, "SELECT start_ns FROM traces ORDER BY start_ns")
    every = sorted([NOW - 2 * HOUR + i * S for i in range(300)]
                   + [NOW - HOUR + i * S for i in range(100)])
    assert starts == every[-len(starts):]  # the oldest went, whole: the newest stay
    assert keep.pruned_traces == 400 - len(starts) > 200
    assert scalar(conn, "SELECT count(*) FROM spans") == 10 * len(starts)
    assert keep.status() == {"retention_s": None, "max_db_bytes": limit,
                             "pruned_traces": keep.pruned_traces, "last_prune_ns": NOW}


def test_new_files_are_made_for_incremental_vacuum_with_8k_pages(db_path):
    conn = open_writer(db_path)
    assert scalar(conn, "PRAGMA auto_vacuum") == 2
    assert scalar(conn, "PRAGMA page_size") == 8192
    conn.close()
    conn = open_writer(db_path)  # an existing file keeps what it has
    assert scalar(conn, "PRAGMA page_size") == 8192
    conn.close()


def old_style_file(path: Path) -> apsw.Connection:
    """A database as versions before retention made it (no incremental vacuum)."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, 0)
    conn.execute("INSERT INTO audit (time_ns, peer, signal, reason, count) "
                 "VALUES (1, 'p', 'traces', 'r', 1)")
    assert scalar(conn, "PRAGMA auto_vacuum") == 0
    return conn


def test_an_older_file_is_converted_once_when_small(tmp_path):
    conn = old_style_file(tmp_path / "a.db")
    assert prepare(conn, prune=False, max_db_bytes=None) is None  # nothing to prune: left
    assert scalar(conn, "PRAGMA auto_vacuum") == 0
    note = prepare(conn, prune=True, max_db_bytes=None)
    assert note is not None and note.startswith("converted ")
    assert scalar(conn, "PRAGMA auto_vacuum") == 2
    assert scalar(conn, "SELECT count(*) FROM audit") == 1
    assert prepare(conn, prune=True, max_db_bytes=None) is None  # once
    conn.close()


def test_a_large_older_file_is_left_with_one_line_saying_how(tmp_path, monkeypatch):
    monkeypatch.setattr(retention_module, "CONVERT_MAX_BYTES", 1000)
    conn = old_style_file(tmp_path / "a.db")
    note = prepare(conn, prune=True, max_db_bytes=None)
    assert note is not None and "\n" not in note
    assert "without incremental vacuum" in note
    assert "PRAGMA auto_vacuum = INCREMENTAL; VACUUM" in note
    assert scalar(conn, "PRAGMA auto_vacuum") == 0
    conn.close()


def test_the_receiver_reports_retention_and_converts_at_start(tmp_path):
    db = tmp_path / "a.db"
    old_style_file(db).close()
    settings = serve_settings(db, retention_s=3 * 86400,
                             max_db_mb=50)
    with BackgroundService(settings) as service:
        assert service.retention_note.startswith("converted ")
        status = read_status(read_db(db))
        assert status.status["retention"] == {"retention_s": 3 * 86400,
                                              "max_db_bytes": 50_000_000,
                                              "pruned_traces": 0, "last_prune_ns": None}
    conn = read_db(db)
    assert scalar(conn, "PRAGMA auto_vacuum") == 2
    assert scalar(conn, "PRAGMA journal_size_limit") is not None


def test_cli_retention_options(tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(main, ["serve", "--help"]).output
    for words in ("--retention AGE", "[default: 7d]", "'off' or 0 keeps everything",
                  "--max-db-mb MB", "0: no limit. [default: 0]"):
        assert words in " ".join(help_text.split()), words
    bad = runner.invoke(main, ["serve", "--db", str(tmp_path / "a.db"), "--retention", "7x"])
    assert bad.exit_code == 2
    assert "--retention" in bad.output and "'7x' is not a duration" in bad.output
    bad = runner.invoke(main, ["serve", "--db", str(tmp_path / "a.db"), "--max-db-mb", "-1"])
    assert bad.exit_code == 2 and "--max-db-mb" in bad.output
    assert not (tmp_path / "a.db").exists()
    run_help = " ".join(runner.invoke(main, ["run", "--help"]).output.split())
    assert "--retention AGE" in run_help and "--max-db-mb MB" in run_help


def test_retention_settings():
    from agenttop.config import parse_retention

    assert parse_retention("off") is None and parse_retention("0") is None
    assert parse_retention("12h") == 12 * 3600
    assert ServeSettings().retention_s == WEEK_S and ServeSettings().max_db_bytes is None
    assert ServeSettings(max_db_mb=8).max_db_bytes == 8_000_000
