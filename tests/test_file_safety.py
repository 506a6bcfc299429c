"""The database file is private to its owner, and a damaged file is refused, never rewritten."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agenttop.store import StoreError
from agenttop.store.db import open_reader, open_writer
from tests.conftest import read_db
from tests.test_bad_input import TRACES, call, span, traces_request


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_wal_and_shm_are_owner_only(tmp_path):
    db = tmp_path / "data" / "agenttop.db"
    old = os.umask(0o022)  # a typical umask: would give 0644 without care
    try:
        conn = open_writer(db)
        conn.execute("CREATE TABLE IF NOT EXISTS probe_write(x)")
        conn.execute("INSERT INTO probe_write VALUES (1)")
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
        assert mode(db.parent) == 0o700
        conn.close()
    finally:
        os.umask(old)


def test_file_written_by_the_server_is_owner_only(make_server, db_path):
    old = os.umask(0o022)
    try:
        service = make_server()
    finally:
        os.umask(old)
    call(service, TRACES, traces_request(span(1)))
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        assert mode(path) == 0o600, (path, oct(mode(path)))


def _good_file(tmp_path: Path) -> bytes:
    path = tmp_path / "good.db"
    conn = open_writer(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.read_bytes()


def _damaged(data: bytes) -> dict[str, bytes]:
    rng = random.Random(7)
    page = 4096
    cases = {
        "garbage after header": data[:100] + rng.randbytes(len(data) - 100),
        "truncated to half": data[: len(data) // 2],
        "truncated inside the header": data[:50],
        "truncated to one page": data[:page],
    }
    for k in (2, len(data) // page // 2, len(data) // page - 1):
        cases[f"garbage from page {k + 1}"] = data[: k * page] + rng.randbytes(
            len(data) - k * page)
    return cases


@pytest.mark.parametrize("opener", [open_writer, open_reader])
def test_damaged_files_are_one_clear_error_and_left_untouched(tmp_path, opener):
    for name, content in _damaged(_good_file(tmp_path)).items():
        path = tmp_path / f"{name.replace(' ', '_')}.db"
        path.write_bytes(content)
        with pytest.raises(StoreError) as info:
            opener(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message, (name, message)
        assert path.read_bytes() == content, name


def test_serve_refuses_a_corrupt_file_with_one_line(tmp_path):
    data = _good_file(tmp_path)
    for content in (data[:100] + random.Random(3).randbytes(len(data) - 100),
                    data[: len(data) // 2]):
        db = tmp_path / "corrupt.db"
        db.write_bytes(content)
        proc = subprocess.run(
            [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db),
             "--grpc", "127.0.0.1:0", "--decoders", "1"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "corrupt" in lines[0] and "Traceback" not in proc.stderr
        assert db.read_bytes() == content


def test_a_healthy_file_still_opens(tmp_path, make_server, db_path):
    call(make_server(), TRACES, traces_request(span(5)))
    assert [r[0] for r in read_db(db_path).execute("SELECT name FROM spans")] == ["span-5"]
