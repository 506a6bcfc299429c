"""The single writer: group commit of decoded batches, with bounded admission.

Every receiver thread or coroutine hands a ``Batch`` to ``Writer.try_submit`` together with
a callback. One thread drains whatever batches are waiting, writes them in one transaction,
commits, and only then calls each callback: an Export is acknowledged only after its rows
are on disk, and concurrent Exports share the cost of one commit.

Admission is bounded by the number of items (spans, points, log records) accepted but not
yet committed; past it ``try_submit`` refuses at once, so memory stays bounded and the
caller can tell the client to retry later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import apsw

from agenttop.store.calls import add_calls
from agenttop.store.conversations import refresh_conversations, sessions_of
from agenttop.store.db import scalar
from agenttop.store.evaluations import add_evaluations
from agenttop.store.rollups import add_to_rollups
from agenttop.store.rows import LAYOUTS, Batch, Layout
from agenttop.store.series import add_points
from agenttop.store.status import bump_version

log = logging.getLogger(__name__)

Done = Callable[[BaseException | None], None]
T = TypeVar("T")


class FileGone(Exception):
    """The database file was deleted, or another file was moved onto its path, while it
    was open: what is committed now would be lost with the old file."""


def write_failure(error: BaseException) -> str:
    """What a failed write means, in words a user can act on."""
    if isinstance(error, FileGone):
        return str(error)
    if isinstance(error, apsw.FullError):
        return "the disk is full (or the file reached its size limit)"
    if isinstance(error, apsw.ReadOnlyError):
        return "the file or its file system became read-only"
    if isinstance(error, apsw.IOError | apsw.CantOpenError):
        return f"the file cannot be written ({error})"
    return str(error) or type(error).__name__


@dataclass(frozen=True)
class _Call:
    fn: Callable[[apsw.Connection], Any]
    future: Future
    transaction: bool = True


def _bulk_insert(layout: Layout) -> str:
    """One statement that inserts every row of a JSON array of row arrays.

    SQLite walks the array in C without the GIL, where ``executemany`` would take and
    release the GIL for each row and stall behind the decoding thread.
    """
    values = [f"nullif(value -> {i}, 'null')" if column in layout.json else f"value ->> {i}"
              for i, column in enumerate(layout.columns)]
    verb = "INSERT OR IGNORE" if layout.ignore_duplicates else "INSERT"
    return (
        f"{verb} INTO {layout.table} ({', '.join(layout.columns)}) "
        f"SELECT {', '.join(values)} FROM jsonb_each(jsonb(?))"
    )


INSERTS = {table: _bulk_insert(layout) for table, layout in LAYOUTS.items()}

# Recomputed from the stored spans of each touched trace rather than incremented, so the
# summary stays right whatever the arrival order (children before their root) and however
# often a span is re-sent.
REFRESH_TRACES = """
INSERT INTO traces (trace_id, root_span_id, root_name, service, start_ns, end_ns,
                    duration_ns, span_count, error_count, updated_ns, layers, finding_count,
                    services, cost_usd, unpriced, input_tokens, output_tokens, session,
                    agents, models, tools)
SELECT a.trace_id, r.span_id, r.name,
       coalesce(r.service, (SELECT service FROM spans WHERE trace_id = a.trace_id
                            ORDER BY start_ns LIMIT 1)),
       a.start_ns, a.end_ns, a.end_ns - a.start_ns, a.n, a.errors, :now,
       (SELECT group_concat(layer, ',') FROM (SELECT DISTINCT layer FROM spans
                                              WHERE trace_id = a.trace_id ORDER BY layer)),
       (SELECT count(*) FROM findings WHERE trace_id = a.trace_id),
       (SELECT group_concat(service, ',') FROM (SELECT DISTINCT service FROM spans
                                                WHERE trace_id = a.trace_id ORDER BY service)),
       a.cost_usd, a.unpriced, a.input_tokens, a.output_tokens,
       -- The conversation: the root's session if it has one, else the earliest span's
       -- (a span without one belongs to its trace's).
       coalesce(r.genai ->> '$.session',
                (SELECT genai ->> '$.session' FROM spans WHERE trace_id = a.trace_id
                   AND genai ->> '$.session' IS NOT NULL ORDER BY start_ns LIMIT 1)),
       coalesce(a.agents, ''), coalesce(a.models, ''), coalesce(a.tools, '')
FROM (SELECT trace_id, min(start_ns) AS start_ns, max(end_ns) AS end_ns, count(*) AS n,
             sum(status_code = 2 OR failure IS NOT NULL) AS errors, sum(cost_usd) AS cost_usd,
             count(genai ->> '$.unpriced') AS unpriced,
             total(input_tokens) AS input_tokens, total(output_tokens) AS output_tokens,
             group_concat(DISTINCT genai ->> '$.agent') AS agents,
             group_concat(DISTINCT genai ->> '$.model') AS models,
             -- Named as the agents screen names tool calls (agenttop.store.calls).
             group_concat(DISTINCT CASE WHEN layer = 'tool' AND genai ->> '$.model' IS NULL
                                        THEN coalesce(genai ->> '$.tool', name) END) AS tools
      FROM spans WHERE trace_id IN (SELECT value FROM json_each(:ids))
      GROUP BY trace_id) AS a
LEFT JOIN spans AS r ON r.rowid = (SELECT rowid FROM spans
                                   WHERE trace_id = a.trace_id AND parent_span_id IS NULL
                                   ORDER BY start_ns LIMIT 1)
WHERE true
ON CONFLICT (trace_id) DO UPDATE SET
    root_span_id = excluded.root_span_id, root_name = excluded.root_name,
    service = excluded.service, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
    duration_ns = excluded.duration_ns, span_count = excluded.span_count,
    error_count = excluded.error_count, updated_ns = excluded.updated_ns,
    layers = excluded.layers, finding_count = excluded.finding_count,
    services = excluded.services, cost_usd = excluded.cost_usd, unpriced = excluded.unpriced,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    session = excluded.session, agents = excluded.agents, models = excluded.models,
    tools = excluded.tools
"""


# Output PII is an echo when the value was first seen in an input of the same trace: an
# input is seen when its span starts, an output when its span ends (a log, at its time).
# A graph's output repeating the user's message is an echo; a value a model produced first
# is not, even when later calls get it back as input. Recomputed for every value of each
# trace that got findings, so the answer does not depend on the order things arrived in.
MARK_ECHOES = """
WITH seen AS (
    SELECT f.trace_id, f.digest,
           min(iif(f.direction = 'input', f.time_ns, NULL)) AS first_in,
           min(iif(f.direction = 'output', coalesce(s.end_ns, f.time_ns), NULL)) AS first_out
    FROM findings AS f
    LEFT JOIN spans AS s ON f.signal = 'span' AND s.trace_id = f.trace_id
                        AND s.span_id = f.span_id
    WHERE f.trace_id IN (SELECT value FROM json_each(:ids)) AND f.digest IS NOT NULL
    GROUP BY f.trace_id, f.digest
)
UPDATE findings SET echo = (seen.first_in IS NOT NULL AND seen.first_in <= seen.first_out)
FROM seen
WHERE findings.trace_id = seen.trace_id AND findings.digest = seen.digest
  AND findings.direction = 'output'
  AND findings.echo IS NOT (seen.first_in IS NOT NULL AND seen.first_in <= seen.first_out)
"""


@dataclass
class WriterStats:
    """Counters since start; read from any thread (plain ints, updated under the lock)."""

    refused: int = 0  # batches turned away because the queue was full
    # Items committed, by batch kind (spans for traces, data points, log records).
    committed: dict[str, int] = field(
        default_factory=lambda: {"traces": 0, "metrics": 0, "logs": 0})


class Writer:
    """Owns the write connection and the thread that commits batches."""

    def __init__(
        self,
        conn: apsw.Connection,
        *,
        max_pending: int = 50_000,
        max_group: int = 20_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._conn = conn
        self._max_pending = max_pending
        self._max_group = max_group
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[Batch, Done] | _Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="agenttop-writer", daemon=True)
        self._rate = 0.0  # items committed per second, smoothed over recent transactions
        self.stats = WriterStats()
        # Why the last transaction failed (write_failure), None after one that committed:
        # readiness and the log say it, once per change.
        self.failing: str | None = None
        self.gone = False  # the file was deleted or replaced: nothing more can be stored
        # Called (on the writer thread) when ``failing`` changes, for readiness to follow.
        self.on_failing_change: Callable[[], None] | None = None
        # The file as opened: its link count drops to 0 when it is deleted or replaced
        # (renaming it keeps it at 1, and writing on is right then).
        path = conn.filename
        self._watch_fd = os.open(path, os.O_RDONLY) if path else None

    def drain_seconds(self) -> float:
        """Roughly how long the items waiting now will take to commit."""
        return self._pending / max(self._rate, 1000.0)

    def start(self) -> None:
        self._thread.start()

    @property
    def accepting(self) -> bool:
        """Running and not closing: batches are taken (as long as the queue has room)."""
        return self._thread.is_alive() and not self._closing

    def try_submit(self, batch: Batch, done: Done) -> bool:
        """Queue a batch; False (and nothing queued) when the queue is full or closing."""
        size = batch.size
        with self._lock:
            # A batch larger than the whole queue is still taken when the queue is empty,
            # or it could never be written however often the client retried.
            if self._closing or (self._pending and self._pending + size > self._max_pending):
                self.stats.refused += 1
                return False
            self._pending += size
        self._queue.put((batch, done))
        return True

    def call(self, fn: Callable[[apsw.Connection], T], *, transaction: bool = True) -> Future[T]:
        """Run ``fn(conn)`` on the writer thread inside a transaction of its own.

        For the few writes that are not ingest (alert episodes, maintenance): they share
        the single write connection instead of contending for the file's write lock.
        ``transaction=False`` runs ``fn`` outside any transaction, for what SQLite refuses
        inside one (a WAL checkpoint).
        """
        future: Future[T] = Future()
        with self._lock:
            if self._closing:
                future.set_exception(RuntimeError("the writer is closed"))
                return future
        self._queue.put(_Call(fn, future, transaction))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Write everything already accepted, then checkpoint and close the file."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except apsw.Error as e:  # a busy reader only delays the checkpoint
            log.warning("final checkpoint skipped: %s", e)
        self._conn.close()
        if self._watch_fd is not None:
            os.close(self._watch_fd)
            self._watch_fd = None

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            if isinstance(item, _Call):
                self._run_call(item)
                continue
            group = [item]
            size = item[0].size
            while size < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if isinstance(item, _Call):
                    self._commit_group(group)
                    group, size = [], 0
                    self._run_call(item)
                    continue
                group.append(item)
                size += item[0].size
            if group:
                self._commit_group(group)

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        conn = self._conn
        try:
            if not call.transaction:
                result = call.fn(conn)
            else:
                with self._transaction():
                    result = call.fn(conn)
        except Exception as e:
            call.future.set_exception(e)
        else:
            call.future.set_result(result)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, into the file as it was opened, or ROLLBACK; ``failing`` then
        says how it went (logged once per change)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            if self._watch_fd is not None and os.fstat(self._watch_fd).st_nlink == 0:
                raise FileGone(f"{conn.filename} was deleted or replaced while agenttop "
                               "wrote it")
            conn.execute("COMMIT")
        except BaseException as e:
            # SQLite may have rolled back already (a full disk at COMMIT): the original
            # error is the one to report, not "no transaction is active".
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            if isinstance(e, apsw.Error | FileGone | OSError):  # the file's, not a caller's bug
                self._failed(e)
            raise
        if self.failing is not None:
            log.warning("writes to %s succeed again", conn.filename)
            self._set_failing(None)

    def _failed(self, error: BaseException) -> None:
        cause = write_failure(error)
        self.gone = self.gone or isinstance(error, FileGone)
        if cause != self.failing:
            log.error("cannot write to %s: %s", self._conn.filename, cause)
            self._set_failing(cause)

    def _set_failing(self, cause: str | None) -> None:
        self.failing = cause
        if self.on_failing_change is not None:
            try:
                self.on_failing_change()
            except Exception:  # the listener's failure is its own, never the writer's
                log.exception("failing-change listener failed")

    def _commit_group(self, group: list[tuple[Batch, Done]]) -> None:
        batches = [b for b, _ in group]
        started = time.perf_counter()
        try:
            self._write(batches)
            rate = sum(b.size for b in batches) / max(time.perf_counter() - started, 1e-6)
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
            errors: list[BaseException | None] = [None] * len(group)
        except Exception as e:
            if len(group) == 1:
                errors = [e]
            else:
                # One bad batch must not fail the others that shared its transaction.
                errors = []
                for b in batches:
                    try:
                        self._write([b])
                        errors.append(None)
                    except Exception as single:
                        errors.append(single)
        for (_, done), error in zip(group, errors, strict=True):
            try:
                done(error)
            except Exception:  # a callback's failure is the caller's, never the writer's
                log.exception("writer callback failed")
        with self._lock:
            self._pending -= sum(b.size for b in batches)
            for batch, error in zip(batches, errors, strict=True):
                if error is None:
                    self.stats.committed[batch.kind] += batch.size

    def _write(self, batches: list[Batch]) -> None:
        conn = self._conn
        with self._transaction():
            mark = scalar(conn, "SELECT coalesce(max(rowid), 0) FROM spans")
            log_mark = scalar(conn, "SELECT coalesce(max(log_id), 0) FROM logs")
            metrics = any(b.kind == "metrics" for b in batches)
            point_mark = scalar(conn, "SELECT coalesce(max(point_id), 0) FROM metric_points"
                                ) if metrics else 0
            # One statement per batch, not one for the whole group: SQLite parses the bound
            # JSON into memory of its own, and a group of 20,000 spans (~19 MB of JSON)
            # cost ~70 MB at once, on top of the joined copy in Python; per batch it is
            # ~1 MB, at the same speed.
            for table, sql in INSERTS.items():
                for batch in batches:
                    if table in batch.tables:
                        conn.execute(sql, (batch.tables[table].decode(),))
            found_in = set().union(*(b.finding_trace_ids for b in batches))
            if found_in:
                conn.execute(MARK_ECHOES, {"ids": _json_list(found_in)})
            # A log's findings count in its trace's summary too.
            trace_ids = set().union(*(b.trace_ids for b in batches)) | found_in
            if trace_ids:
                touched = {"ids": _json_list(trace_ids), "now": self._clock()}
                conn.execute(REFRESH_TRACES, touched)
                refresh_conversations(conn, sessions_of(conn, trace_ids))
                add_to_rollups(conn, mark)
                add_calls(conn, mark, touched["ids"], touched["now"])
            if any(b.kind in ("traces", "logs") for b in batches):
                add_evaluations(conn, mark, log_mark)
            if metrics:
                add_points(conn, point_mark)  # type: ignore[arg-type]
            bump_version(conn)


def _json_list(ids: set[str]) -> str:
    # Trace ids are validated lowercase hex, so no escaping is needed.
    return '["' + '","'.join(ids) + '"]'
