"""One receiver per file: an advisory lock on a sidecar file, ``FILE-receiver.lock``.

Two ``serve`` processes writing one file would both heartbeat, both evaluate alerts (one
incident, two episodes) and both run ``--on-alert``. The second one refuses to start,
naming the first. The lock is ``flock``'s, so the operating system releases it when its
process ends, however it ends; ``agenttop import`` takes no such lock and still takes
turns with the running receiver at SQLite's write lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from agenttop.store.db import StoreError, open_reader
from agenttop.store.status import read_status

try:
    import fcntl
except ImportError:  # not POSIX: no lock (documented)
    fcntl = None  # type: ignore[assignment]


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + "-receiver.lock")


class ReceiverLock:
    """Held by the one ``serve`` writing ``db``, from before it opens the file until it
    has closed it."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = Path(db).expanduser()
        self.path = lock_path(self.db)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StoreError naming the receiver that holds it."""
        if fcntl is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StoreError(f"cannot create directory {self.path.parent}: {e.strerror}") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreError(f"cannot create {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise StoreError(f"{self.db} is already written by {self._describe(holder)}; "
                             "stop it first, or give this one another --db") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Removed while still held: a process that opened it before waits for nothing and
        # one that opens the path after gets a new file.
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def _describe(self, pid: str) -> str:
        """``agenttop serve (pid 1234, on 127.0.0.1:4317 and 127.0.0.1:4318)``."""
        details = [f"pid {pid}"] if pid.isdigit() else []
        with contextlib.suppress(Exception):  # the running one's own word, if it has said it
            conn = open_reader(self.db, busy_timeout_ms=500)
            try:
                status = read_status(conn)
            finally:
                conn.close()
            if status is not None and str(status.pid) == pid:
                parts = status.status
                addresses = [a for a in (parts.get("receiver", {}).get("grpc"),
                                         parts.get("http", {}).get("address")) if a]
                if addresses:
                    details.append("on " + " and ".join(addresses))
        return "agenttop serve" + (f" ({', '.join(details)})" if details else "")
