"""Opening the database file: checks that it is ours, migrates it, and sets the pragmas.

agenttop talks to SQLite through APSW, which bundles a current SQLite: the writer relies on
JSONB (3.45+) to insert a whole batch in one statement. The file itself is plain SQLite,
readable by any client, Python's ``sqlite3`` included.

Every problem a user can cause (a foreign file, a newer schema, a path that cannot be
written) surfaces as one ``StoreError`` whose message is fit to print as is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import apsw

from agenttop.store.schema import APPLICATION_ID, LATEST_VERSION, MIGRATIONS

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000
PAGE_SIZE = 8192  # of new files


class StoreError(Exception):
    """The database cannot be used; the message says why in one line."""


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not an agenttop database (not an SQLite file)")


def scalar(conn: apsw.Connection, sql: str, bindings: tuple = ()) -> object:
    """The first column of the first row of ``sql``, or None."""
    for row in conn.execute(sql, bindings):
        return row[0]
    return None


def _check_ownership(conn: apsw.Connection, path: Path) -> int:
    """Return the schema version of an agenttop file; refuse anything else."""
    app_id = scalar(conn, "PRAGMA application_id")
    version = scalar(conn, "PRAGMA user_version")
    has_tables = scalar(conn, "SELECT count(*) FROM sqlite_master")
    if app_id != APPLICATION_ID and (app_id != 0 or has_tables):
        raise StoreError(f"{path} is an SQLite file but not an agenttop database")
    if version > LATEST_VERSION:
        raise StoreError(
            f"{path} was written by a newer agenttop (schema {version}; this version "
            f"knows up to {LATEST_VERSION}); upgrade agenttop to open it"
        )
    return version


def _probe(conn: apsw.Connection) -> None:
    """Read the first page of every table and index: cheap, and it finds a file whose pages
    were overwritten or cut off (SQLite then raises CorruptError), before anything is
    written to it. Damage deeper inside a large table is reported when a query reaches it."""
    objects = list(conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index') "
        "AND rootpage > 0"))
    for kind, name, table in objects:
        quoted_table = '"' + table.replace('"', '""') + '"'
        if kind == "table":
            scalar(conn, f"SELECT 1 FROM {quoted_table} LIMIT 1")
        else:
            quoted = '"' + name.replace('"', '""') + '"'
            # (SQLError: a partial index the planner cannot use for a bare scan)
            with contextlib.suppress(apsw.SQLError):
                scalar(conn, f"SELECT 1 FROM {quoted_table} INDEXED BY {quoted} LIMIT 1")


def _create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only (mode 0600).

    SQLite gives the -wal and -shm files the permissions of the database file, so they
    are owner-only too. An existing file is left as it is.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror}") from None
    os.close(fd)


def migrate(conn: apsw.Connection, version: int) -> None:
    """Apply every migration after ``version``, each in its own transaction."""
    for number in range(version + 1, LATEST_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(MIGRATIONS[number - 1])
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def open_writer(path: str | os.PathLike[str], *, synchronous: str = "FULL") -> apsw.Connection:
    """Open (creating if needed) the database for the single writer and migrate it."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise StoreError(f"cannot create directory {path.parent}: {e.strerror}") from None
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    if path.exists():
        _check_header(path)
    else:
        _create_private(path)
    try:
        conn = apsw.Connection(str(path))
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        version = _check_ownership(conn, path)
        _probe(conn)
        if version == 0:
            # Only before the first table (and before WAL mode) do these take. Incremental
            # vacuum lets retention give pruned space back to the file system
            # (agenttop/store/retention.py). 8 KiB pages hold a span row (about 1 KB, most
            # of it attributes) with less waste than 4 KiB ones: 1,182 bytes per span
            # instead of 1,430 on agent-shaped traffic, ingest and reads as fast.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # A writer that runs for days must not let the WAL grow without bound, but
        # checkpointing too often would cost ingest throughput.
        conn.execute("PRAGMA wal_autocheckpoint = 4000")
        # 32 MiB: the pages ingest keeps touching (the right edges of the tables and the
        # upper levels of the indexes); on a file of 3 million spans, 64 MiB wrote no
        # faster and held 32 MiB more of the receiver's memory.
        conn.execute("PRAGMA cache_size = -32768")
        conn.execute("PRAGMA temp_store = MEMORY")
        migrate(conn, version)
    except (apsw.CantOpenError, apsw.ReadOnlyError, apsw.IOError, apsw.FullError) as e:
        raise StoreError(f"cannot write {path}: {e}") from None
    except apsw.CorruptError as e:
        raise StoreError(f"{path} is corrupt ({e}); it was left untouched") from None
    except apsw.Error as e:
        raise StoreError(f"{path} is not a usable SQLite database ({e})") from None
    return conn


def is_unmigrated(path: str | os.PathLike[str]) -> bool:
    """An SQLite file without tables yet: a writer has created it and not migrated it."""
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error:
        return False
    try:
        return scalar(conn, "SELECT count(*) FROM sqlite_master") == 0 and scalar(
            conn, "PRAGMA user_version") == 0
    except apsw.Error:
        return False
    finally:
        conn.close()


def locked_message(path: str | os.PathLike[str]) -> str:
    return f"{path} is locked by another program"


def open_reader(path: str | os.PathLike[str], *,
                busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> apsw.Connection:
    """Open an existing database read-only (any number of readers may run beside the writer).

    ``busy_timeout_ms``: how long a read waits for another program's lock on the file
    before giving up (here with ``StoreError``, in later reads with ``apsw.BusyError``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    _check_header(path)
    try:
        if os.access(path.parent, os.W_OK):
            conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        else:
            # A read-only directory (a read-only mount, an archive): SQLite cannot create
            # the -shm file a WAL database is read with, and no one can write the file
            # there, so it is read as immutable.
            conn = apsw.Connection(f"{path.as_uri()}?immutable=1",
                                   flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        conn.set_busy_timeout(busy_timeout_ms)
        version = _check_ownership(conn, path)
        _probe(conn)
    except apsw.CorruptError as e:
        raise StoreError(f"{path} is corrupt ({e}); it was left untouched") from None
    except apsw.BusyError:
        raise StoreError(locked_message(path)) from None
    except apsw.Error as e:
        raise StoreError(f"cannot read {path}: {e}") from None
    if version < LATEST_VERSION:
        conn.close()
        raise StoreError(
            f"{path} has an older schema; start `agenttop serve` on it once to upgrade it"
        )
    return conn
