"""Refused OTLP calls in the ``audit`` table: recording them and reading them back.

A row is one (peer, signal, reason) and how many calls were refused from ``time_ns`` on;
never the token or the payload (agenttop/otlp/audit.py coalesces them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apsw


def record_refused(conn: apsw.Connection,
                   rows: Iterable[tuple[int, str, str, str, int]]) -> None:
    """Insert (first time_ns, peer, signal, reason, count) rows, in the caller's
    transaction."""
    conn.executemany("INSERT INTO audit (time_ns, peer, signal, reason, count) "
                     "VALUES (?, ?, ?, ?, ?)", rows)


@dataclass(frozen=True, slots=True)
class RefusedCall:
    """One ``audit`` row: ``count`` refusals of one peer, signal and reason from ``time_ns``."""

    audit_id: int
    time_ns: int
    peer: str  # as the client's connection reports it: untrusted text
    signal: str
    reason: str
    count: int


def list_refused(conn: apsw.Connection, *, limit: int = 100) -> list[RefusedCall]:
    """Refused calls newest first (through ``audit_time``), at most ``limit`` rows."""
    return [RefusedCall(*row) for row in conn.execute(
        "SELECT audit_id, time_ns, peer, signal, reason, count FROM audit "
        "ORDER BY time_ns DESC, audit_id DESC LIMIT ?", (limit,))]


def refused_by_reason(conn: apsw.Connection, since_ns: int) -> dict[str, int]:
    """Refused calls per reason since ``since_ns`` (a range of ``audit_time``)."""
    return {reason: int(n) for reason, n in conn.execute(
        "SELECT reason, sum(count) FROM audit WHERE time_ns >= ? GROUP BY reason",
        (since_ns,))}
