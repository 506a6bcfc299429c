"""Retention: pruning old data by age and by file size, and giving the space back.

By age (``prune_by_age``): traces that ended before the cutoff go whole, with their spans
and the logs and findings that carry their trace id; a trace that spans the cutoff stays
whole. Then, older than the cutoff: logs and findings of no stored trace, metric points,
rollup minutes, resolved alert episodes and audit rows. What arrived after the cutoff
stays too, whatever its timestamps: replayed data, or data from a machine whose clock is
behind, is kept for the retention instead of vanishing as it arrives.

By size (``prune_by_size``): the oldest traces (by start), and everything above that is
older than the oldest trace left, until the live data is under a low-water mark. Rollup
minutes of the last hour stay, so health windows (up to 15 minutes) read what they did.

Each function is one bounded step inside the caller's transaction: ``Retention`` runs the
steps one ``Writer.call`` at a time from a worker thread, and whatever ingest queued
meanwhile is committed between two steps. Freed pages go back to the file system by
``PRAGMA incremental_vacuum``, in steps too (files are created with ``auto_vacuum =
INCREMENTAL``; ``prepare`` converts an older file once), then a WAL checkpoint lets the
file shrink.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import apsw

from agenttop.store.conversations import refresh_conversations, sessions_of
from agenttop.store.db import BUSY_TIMEOUT_MS, scalar
from agenttop.store.rows import MINUTE_NS
from agenttop.store.series import forget_series
from agenttop.store.status import bump_version
from agenttop.store.writer import Writer

T = TypeVar("T")

# One step's work: a few thousand rows, so that it holds the writer for milliseconds.
SPANS_PER_STEP = 1000  # whole traces up to this many spans (at least one trace)
TRACES_PER_STEP = 500
ROWS_PER_STEP = 5000  # logs, findings, points, rollups, alerts, audit rows together
SIZE_CHUNK = 200  # pruning by size checks the size again after this many spans or rows
VACUUM_PAGES_PER_STEP = 512
VACUUM_MIN_BYTES = 4 * 2**20
# With a size limit, this share of it is left to the write-ahead log, the rest to the data;
# pruning starts past the data's share and stops at LOW_WATER of it.
WAL_SHARE = 1 / 8
LOW_WATER = 0.9
ROLLUP_KEEP_NS = 3600 * 10**9  # size pruning keeps the last hour of rollup minutes
# An older file without incremental vacuum is converted (VACUUM) at start up to this size.
CONVERT_MAX_BYTES = 256 * 10**6


@dataclass
class Step:
    """What one step removed; ``more``: call again, there may be more to remove."""

    traces: int = 0
    rows: int = 0  # rows of every table, spans included

    @property
    def more(self) -> bool:
        return bool(self.traces or self.rows)


def page_sizes(conn: apsw.Connection) -> tuple[int, int]:
    """(live bytes, free bytes) of the database as of this transaction, WAL included."""
    page = scalar(conn, "PRAGMA page_size")
    count = scalar(conn, "PRAGMA page_count")
    free = scalar(conn, "PRAGMA freelist_count")
    return (count - free) * page, free * page


def _delete_traces(conn: apsw.Connection, rows: list[tuple[str, int]], max_spans: int) -> Step:
    """Delete the first of ``rows`` (trace id, span count) up to ``max_spans`` spans (at
    least one trace: a trace is never split)."""
    ids: list[str] = []
    spans = 0
    for trace_id, count in rows:
        if ids and spans + count > max_spans:
            break
        ids.append(trace_id)
        spans += count
    step = Step(traces=len(ids))
    if ids:
        id_list = json.dumps(ids)
        sessions = sessions_of(conn, ids)
        for table in ("spans", "logs", "findings", "traces"):
            conn.execute(f"DELETE FROM {table} "
                         "WHERE trace_id IN (SELECT value FROM json_each(?))", (id_list,))
            step.rows += conn.changes()
        refresh_conversations(conn, sessions)  # fewer turns, or gone
    return step


# Rows older than the cutoff that arrived before the received cutoff and belong to no stored
# trace, among the :n oldest (bounded work: a step never reads more than :n rows a table;
# rows it skips, like a replay of old data received just now, only delay the ones after).
_NO_TRACE = ("(o.trace_id IS NULL OR NOT EXISTS "
             "(SELECT 1 FROM traces AS t WHERE t.trace_id = o.trace_id))")
_OLDER = {
    "logs": "SELECT log_id FROM (SELECT log_id, trace_id, received_ns FROM logs "
            "WHERE time_ns < :cutoff ORDER BY time_ns LIMIT :n) AS o "
            "WHERE received_ns < :received AND " + _NO_TRACE,
    "findings": "SELECT finding_id FROM (SELECT finding_id, trace_id, received_ns FROM findings "
                "WHERE time_ns < :cutoff ORDER BY time_ns LIMIT :n) AS o "
                "WHERE received_ns < :received AND " + _NO_TRACE,
    "alerts": "SELECT alert_id FROM alerts WHERE state = 'resolved' AND started_ns < :cutoff "
              "AND resolved_ns < :cutoff LIMIT :n",
    "audit": "SELECT audit_id FROM audit WHERE time_ns < :cutoff ORDER BY time_ns LIMIT :n",
}
_KEYS = {"logs": "log_id", "findings": "finding_id", "alerts": "alert_id", "audit": "audit_id"}
_OLD_SERIES = ("SELECT series_id FROM metric_series WHERE first_ns < :cutoff "
               "ORDER BY first_ns LIMIT :n")
_OLDER_POINTS = """
DELETE FROM metric_points WHERE point_id IN (
    SELECT point_id FROM (SELECT point_id, received_ns FROM metric_points
                          WHERE series_id = :series AND time_ns < :cutoff
                          ORDER BY time_ns LIMIT :n)
    WHERE received_ns < :received)
"""
# A series' first point after a step (its last, when none is left: forget_series then
# drops it).
_FIRST_POINT = """
UPDATE metric_series SET first_ns = coalesce(
    (SELECT min(time_ns) FROM metric_points WHERE series_id = :series), last_ns)
WHERE series_id = :series
"""


def _prune_rows_before(conn: apsw.Connection, cutoff_ns: int, received_ns: int,
                       rollup_cutoff_ns: int, limit: int = ROWS_PER_STEP) -> int:
    """Delete up to about ``limit`` rows of no stored trace, older than the cutoffs."""
    budget = limit

    def delete(sql: str, bindings: dict) -> None:
        nonlocal budget
        conn.execute(sql, bindings)
        budget -= conn.changes()

    times = {"cutoff": cutoff_ns, "received": received_ns}
    for table in ("logs", "findings"):
        delete(f"DELETE FROM {table} WHERE {_KEYS[table]} IN ({_OLDER[table]})",
               {**times, "n": budget})
    # Metric points by series, the series with the oldest points first (one index seek
    # each, not a walk over every metric name), then the series left without points.
    for (series_id,) in list(conn.execute(_OLD_SERIES, {"cutoff": cutoff_ns, "n": budget})):
        if budget <= 0:
            break
        delete(_OLDER_POINTS, {**times, "series": series_id, "n": budget})
        conn.execute(_FIRST_POINT, {"series": series_id})
    forget_series(conn, cutoff_ns)
    # The rollups have no rowid: bound the step by the minute of the budget's last row
    # (overshooting by at most that minute's rows).
    minute = rollup_cutoff_ns // MINUTE_NS
    for table in ("layer_minutes", "layer_minute_durations", "model_minutes", "call_minutes",
                  "call_minute_durations", "eval_minutes"):
        if budget <= 0:
            break
        last = scalar(conn, f"SELECT minute FROM {table} WHERE minute < ? ORDER BY minute "
                            "LIMIT 1 OFFSET ?", (minute, budget))
        delete(f"DELETE FROM {table} WHERE minute < :m",
               {"m": minute if last is None else min(minute, last + 1)})
    for table in ("alerts", "audit"):
        if budget > 0:
            delete(f"DELETE FROM {table} WHERE {_KEYS[table]} IN ({_OLDER[table]})",
                   {"cutoff": cutoff_ns, "n": budget})
    return limit - budget


def _rollup_cutoff(conn: apsw.Connection, cutoff_ns: int, now_ns: int) -> int:
    """Rollup minutes go below the cutoff, but never where spans are left (health over a
    replayed day must still read), nor in the last hour (the health windows)."""
    oldest = scalar(conn, "SELECT min(start_ns) FROM traces")
    return min(cutoff_ns, now_ns - ROLLUP_KEEP_NS, cutoff_ns if oldest is None else oldest)


def prune_by_age(conn: apsw.Connection, cutoff_ns: int, now_ns: int) -> Step:
    """One step of removing what ended, and arrived, before ``cutoff_ns``: traces first,
    then the rest."""
    rows = list(conn.execute(
        "SELECT trace_id, span_count FROM (SELECT trace_id, span_count, end_ns, updated_ns "
        "FROM traces WHERE start_ns < :c ORDER BY start_ns LIMIT :n) "
        "WHERE end_ns < :c AND updated_ns < :c", {"c": cutoff_ns, "n": TRACES_PER_STEP}))
    step = _delete_traces(conn, rows, SPANS_PER_STEP)
    if not step.traces:
        step.rows = _prune_rows_before(conn, cutoff_ns, cutoff_ns,
                                       _rollup_cutoff(conn, cutoff_ns, now_ns))
    if step.more:
        bump_version(conn)
    return step


def prune_by_size(conn: apsw.Connection, target_bytes: int, now_ns: int,
                  max_bytes: int | None = None) -> Step:
    """One step of removing the oldest data while the live data is over ``target_bytes``,
    in chunks of SIZE_CHUNK spans and rows so as not to overshoot the target much, and
    freeing at most about ``max_bytes`` (each freed page is written to the WAL)."""
    step = Step()
    start = page_sizes(conn)[0]
    for _ in range(SPANS_PER_STEP // SIZE_CHUNK):
        live = page_sizes(conn)[0]
        if live <= target_bytes or (max_bytes is not None and start - live >= max_bytes):
            break
        chunk = _delete_traces(conn, list(conn.execute(
            "SELECT trace_id, span_count FROM traces ORDER BY start_ns LIMIT ?",
            (SIZE_CHUNK,))), SIZE_CHUNK)
        oldest = scalar(conn, "SELECT min(start_ns) FROM traces")
        cutoff = now_ns if oldest is None else oldest
        chunk.rows += _prune_rows_before(conn, cutoff, 2**63 - 1,
                                         min(cutoff, now_ns - ROLLUP_KEEP_NS), SIZE_CHUNK)
        if not chunk.more:
            break
        step.traces += chunk.traces
        step.rows += chunk.rows
    if step.more:
        bump_version(conn)
    return step


def vacuum_step(conn: apsw.Connection, max_bytes: int) -> int:
    """Give up to ``max_bytes`` of free pages back to the file system; returns the bytes."""
    page = scalar(conn, "PRAGMA page_size")
    before = scalar(conn, "PRAGMA freelist_count")
    pages = min(VACUUM_PAGES_PER_STEP, max(1, max_bytes // page))
    conn.execute(f"PRAGMA incremental_vacuum({pages})").fetchall()  # one row a page: step it
    return (before - scalar(conn, "PRAGMA freelist_count")) * page


def checkpoint(conn: apsw.Connection) -> None:
    """Copy the WAL into the file and empty it, without waiting for readers: outside any
    transaction. A reader in the way only leaves the rest for the next checkpoint."""
    conn.set_busy_timeout(0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)


def file_bytes(path: str | os.PathLike[str]) -> int:
    """What the user sees on disk: the database file plus its write-ahead log."""
    total = 0
    for name in (os.fspath(path), os.fspath(path) + "-wal"):
        with contextlib.suppress(OSError):
            total += os.stat(name).st_size
    return total


def wal_budget(max_db_bytes: int) -> int:
    return int(max_db_bytes * WAL_SHARE)


def prepare(conn: apsw.Connection, *, prune: bool, max_db_bytes: int | None) -> str | None:
    """Ready the writer's connection (before the writer starts) for pruning: keep the WAL
    within its share of a size limit, and convert a file made without incremental vacuum
    when it is small enough. Returns a line to tell the user, or None."""
    if max_db_bytes is not None:
        # Checkpoint, and cut the WAL back, at half its share: the transaction that passes
        # the mark still goes in whole before the checkpoint.
        wal = wal_budget(max_db_bytes) // 2
        pages = wal // scalar(conn, "PRAGMA page_size")
        conn.execute(f"PRAGMA journal_size_limit = {wal}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {max(32, min(4000, pages))}")
    if not prune or scalar(conn, "PRAGMA auto_vacuum") == 2:  # 2: INCREMENTAL
        return None
    path = Path(conn.filename)
    size = file_bytes(path)
    how = (f"to convert it, stop serve and run once: sqlite3 {shlex.quote(str(path))} "
           "'PRAGMA auto_vacuum = INCREMENTAL; VACUUM'")
    if size > CONVERT_MAX_BYTES:
        return (f"{path} ({size / 1e6:.0f} MB) was made without incremental vacuum: pruned "
                f"space is reused, but the file will not shrink; {how}")
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        checkpoint(conn)
    except apsw.Error as e:
        return f"could not convert {path} to incremental vacuum ({e}); {how}"
    return f"converted {path} to incremental vacuum (once), so that pruning can shrink it"


class Retention:
    """Drives pruning and vacuuming through the writer of the file ``db``; ``run_once``
    blocks (run it in a worker thread).

    ``retention_s``: keep this long (None: forever). ``max_db_bytes``: keep the file (with
    its WAL) about this small (None: no limit).
    """

    def __init__(self, writer: Writer, db: str | os.PathLike[str], *,
                 retention_s: int | None, max_db_bytes: int | None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.writer = writer
        self._wal_path = Path(os.fspath(db) + "-wal")
        self.retention_s = retention_s
        self.max_db_bytes = max_db_bytes
        self.clock = clock
        self.pruned_traces = 0
        self.last_prune_ns: int | None = None
        self._stop = threading.Event()
        self._busy = threading.Lock()
        # With a size limit, a step frees (and so writes to the WAL) at most half its share.
        self._step_bytes: int | None = None
        if max_db_bytes is not None:
            self._high = max_db_bytes - wal_budget(max_db_bytes)
            self._low = int(self._high * LOW_WATER)
            self._step_bytes = wal_budget(max_db_bytes) // 2

    @property
    def interval_s(self) -> float:
        """How often to run: a size limit is watched closely, age needs no hurry."""
        return 0.25 if self.max_db_bytes is not None else 10.0

    def status(self) -> dict:
        return {"retention_s": self.retention_s, "max_db_bytes": self.max_db_bytes,
                "pruned_traces": self.pruned_traces, "last_prune_ns": self.last_prune_ns}

    def _call(self, fn: Callable[[apsw.Connection], T], transaction: bool = True) -> T:
        return self.writer.call(fn, transaction=transaction).result(60)

    def _repeat(self, fn: Callable[[apsw.Connection], Step]) -> None:
        """Run steps, one writer call each, until one finds nothing to remove."""
        while not self._stop.is_set():
            step = self._call(fn)
            if not step.more:
                return
            self.pruned_traces += step.traces
            self.last_prune_ns = self.clock()

    def run_once(self) -> None:
        """Prune what is due, give free space back, and let the file shrink."""
        with self._busy:
            if self._stop.is_set():
                return
            if self.retention_s is not None:
                now = self.clock()
                cutoff = now - self.retention_s * 10**9
                self._repeat(lambda conn: prune_by_age(conn, cutoff, now))
            if self.max_db_bytes is not None and self._call(page_sizes)[0] > self._high:
                self._repeat(lambda conn: prune_by_size(conn, self._low, self.clock(),
                                                        self._step_bytes))
            if self._vacuum() or self._wal_over_budget():
                self._call(checkpoint, transaction=False)

    def close(self) -> None:
        """Stop after the current step; returns once no round runs (blocks: a thread).
        Call it while the writer still runs."""
        self._stop.set()
        with self._busy:
            pass

    def _vacuum(self) -> int:
        """Incremental vacuum, in steps, when enough is free or the file is over its share."""
        live, free = self._call(page_sizes)
        goal = free if free >= max(VACUUM_MIN_BYTES, (live + free) // 8) else 0
        if self.max_db_bytes is not None:
            goal = max(goal, min(free, live + free - self._high))
        done = 0
        while done < goal and not self._stop.is_set():
            left = goal - done if self._step_bytes is None else min(goal - done,
                                                                   self._step_bytes)
            freed = self._call(lambda conn, left=left: vacuum_step(conn, left))
            if not freed:  # a file without incremental vacuum: nothing to give back
                break
            done += freed
        return done

    def _wal_over_budget(self) -> bool:
        if self.max_db_bytes is None:
            return False
        with contextlib.suppress(OSError):
            return self._wal_path.stat().st_size > wal_budget(self.max_db_bytes)
        return False
