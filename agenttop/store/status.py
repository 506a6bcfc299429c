"""The receiver's row in the ``receiver`` table: a heartbeat readers use to tell whether
``agenttop serve`` is running on the file, and a JSON object of what it reports about itself
(addresses, counters, retention, forwarding), keyed by the part that reports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import apsw

from agenttop.store.db import scalar

HEARTBEAT_S = 2.0
# A heartbeat older than this means the receiver is gone (killed, or its machine asleep).
STALE_AFTER_S = 3 * HEARTBEAT_S + 1.0


def write_heartbeat(conn: apsw.Connection, *, started_ns: int, now_ns: int, status: dict,
                    stopped: bool = False) -> None:
    """Record that this process is (or, with ``stopped``, was until now) the receiver."""
    conn.execute(
        "INSERT INTO receiver (id, pid, started_ns, heartbeat_ns, stopped_ns, status) "
        "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
        "started_ns = excluded.started_ns, heartbeat_ns = excluded.heartbeat_ns, "
        "stopped_ns = excluded.stopped_ns, status = excluded.status",
        (os.getpid(), started_ns, now_ns, now_ns if stopped else None,
         json.dumps(status, sort_keys=True)),
    )


@dataclass(frozen=True)
class ReceiverStatus:
    pid: int
    started_ns: int
    heartbeat_ns: int
    stopped_ns: int | None
    status: dict = field(default_factory=dict)

    def state(self, now_ns: int) -> str:
        """"running", "stopped" (said so on its way out) or "gone" (heartbeat went stale)."""
        if self.stopped_ns is not None:
            return "stopped"
        if now_ns - self.heartbeat_ns > STALE_AFTER_S * 1e9:
            return "gone"
        return "running"


def read_status(conn: apsw.Connection) -> ReceiverStatus | None:
    """The last receiver's row, or None when no receiver has written one yet."""
    row = conn.execute(
        "SELECT pid, started_ns, heartbeat_ns, stopped_ns, status FROM receiver WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    try:
        status = json.loads(row[4])
    except ValueError:
        status = {}
    return ReceiverStatus(row[0], row[1], row[2], row[3],
                          status if isinstance(status, dict) else {})


def bump_version(conn: apsw.Connection) -> None:
    """Say that something a reader shows changed (data, alerts, pruning); not the
    heartbeat, so that a reader of an idle file reads nothing again."""
    conn.execute("UPDATE data_changes SET version = version + 1 WHERE id = 1")


def data_version(conn: apsw.Connection) -> int:
    """Grows with every change a reader would show (see ``bump_version``)."""
    return int(scalar(conn, "SELECT version FROM data_changes WHERE id = 1") or 0)  # type: ignore[arg-type]
