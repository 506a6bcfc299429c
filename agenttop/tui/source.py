"""The TUI's access to the database file: read-only connections for worker threads.

The UI never touches SQLite on its own thread. Workers borrow a connection from ``Source``
(one per concurrent worker: an APSW connection must not be used by two threads at once),
run their queries in one read transaction (a consistent snapshot of the file) and give it
back. The file may not exist yet (``serve`` still starting), may be replaced (a new file
at the same path), or may not be ours: each case is a one-line ``NotReady`` or
``StoreError`` message for the status line, never a crash. A lock held by another program
makes a read fail with ``apsw.BusyError`` after ``BUSY_TIMEOUT_MS``, so that the refresh
loop can say so and try again instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import apsw

from agenttop.store import StoreError, open_reader
from agenttop.store.db import is_unmigrated

T = TypeVar("T")

# In WAL mode the receiver never blocks readers; only another program's lock (an exclusive
# transaction, a recovery after a crash) does. Short, to report it within a refresh or so.
BUSY_TIMEOUT_MS = 1_000


class NotReady(Exception):
    """There is no database to read yet; the message says where it is awaited."""


class Source:
    """Read-only connections to one database file, lent to one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._idle: list[apsw.Connection] = []
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file

    def _waiting(self) -> NotReady:
        return NotReady(f"waiting for data at {self.path}: no receiver has written to it yet")

    def _identify(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise self._waiting() from None
        except OSError as e:
            raise StoreError(f"cannot read {self.path}: {e.strerror}") from None
        if st.st_size == 0:
            # serve creates the file, then writes the schema: not an error, just early.
            raise self._waiting()
        return st.st_dev, st.st_ino

    def _open(self) -> apsw.Connection:
        try:
            return open_reader(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        except StoreError:
            if is_unmigrated(self.path):
                raise self._waiting() from None
            raise

    @contextlib.contextmanager
    def connection(self) -> Iterator[apsw.Connection]:
        """A connection for this thread, inside one read transaction."""
        identity = self._identify()
        with self._lock:
            if identity != self._identity:
                # A new file at the path: connections to the old one would read stale data.
                stale, self._idle = self._idle, []
                self._identity = identity
            else:
                stale = []
            conn = self._idle.pop() if self._idle else None
        for old in stale:
            old.close()
        if conn is None:
            conn = self._open()
        healthy = False
        try:
            with conn:  # a savepoint: every query of this read sees the same snapshot
                yield conn
            healthy = True
        finally:
            if healthy:
                with self._lock:
                    if identity == self._identity:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                # After an error the connection may be in any state: never lend it again.
                conn.close()

    def read(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run ``fn`` on a borrowed connection (from a worker thread, never the UI's)."""
        with self.connection() as conn:
            return fn(conn)

    def file_size(self) -> int | None:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = None
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):
                total = (total or 0) + os.stat(path).st_size
        return total

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
