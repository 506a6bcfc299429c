"""Shared fixtures: a real receiver on a free loopback port, and readers of its database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from agenttop.config import ServeSettings  # noqa: E402
from agenttop.serve import BackgroundService, Service  # noqa: E402


class Row(tuple):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    names: dict[str, int]

    def __getitem__(self, key):  # type: ignore[override]
        return super().__getitem__(self.names[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self.names)


def _row(cursor: apsw.Cursor, values: tuple) -> Row:
    row = Row(values)
    row.names = {d[0]: i for i, d in enumerate(cursor.get_description())}
    return row


def read_db(path: Path) -> apsw.Connection:
    """A read-only connection for checking what was stored.

    Through APSW, the library the writer uses: two different SQLite libraries in one
    process break each other's POSIX locks on the same file, and the in-process receivers
    of these tests write while the tests read. (Reading with Python's ``sqlite3`` from
    another process, as users do, is exercised by tests/test_process.py.)
    """
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    conn.set_busy_timeout(10_000)
    conn.row_trace = _row
    return conn


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agenttop.db"


def serve_settings(db: Path, **settings: object) -> ServeSettings:
    """Settings for a receiver under test: a free gRPC port, one decoder, no HTTP."""
    return ServeSettings(**{"db": db, "grpc": "127.0.0.1:0", "decoders": 1, "http": None,
                            **settings})


@pytest.fixture
def make_server(db_path: Path) -> Iterator:
    """Start a receiver with the given settings; stopped (and flushed) at the end of the test."""
    started: list[BackgroundService] = []

    def start(**settings: object) -> Service:
        settings.setdefault("db", db_path)
        settings.setdefault("grpc", "127.0.0.1:0")
        settings.setdefault("decoders", 1)
        settings.setdefault("http", None)
        background = BackgroundService(ServeSettings(**settings))
        service = background.__enter__()
        started.append(background)
        return service

    yield start
    for background in reversed(started):
        background.__exit__(None, None, None)


@pytest.fixture
def server(make_server) -> Service:
    return make_server()
