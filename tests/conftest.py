"""Shared fixtures: a real receiver on a free loopback port, and readers of its database."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from agenttop.config import ServeSettings  # noqa: E402
from agenttop.serve import BackgroundService, Service  # noqa: E402


def read_db(path: Path) -> sqlite3.Connection:
    """Read the file as a user would, with Python's own sqlite3 module."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agenttop.db"


@pytest.fixture
def make_server(db_path: Path) -> Iterator:
    """Start a receiver with the given settings; stopped (and flushed) at the end of the test."""
    started: list[BackgroundService] = []

    def start(**settings: object) -> Service:
        settings.setdefault("db", db_path)
        settings.setdefault("grpc", "127.0.0.1:0")
        settings.setdefault("decoders", 1)
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
