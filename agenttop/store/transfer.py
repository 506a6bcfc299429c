"""Whole traces as stored, for ``agenttop export``, and the findings ``agenttop import``
restores: the reads and writes the OTLP export and import (agenttop/otlp/) need."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import apsw

from agenttop.store.rows import LAYOUTS, FindingRow, LogRecordRow, SpanRow, encode_rows
from agenttop.store.writer import INSERTS


def _read(conn: apsw.Connection, table: str, trace_ids: Sequence[str], order: str) -> list:
    """Rows of ``table`` as its ingest row type, JSON columns parsed back."""
    layout = LAYOUTS[table]
    json_at = [i for i, name in enumerate(layout.columns) if name in layout.json]
    out = []
    for trace_id in trace_ids:
        for row in conn.execute(f"SELECT {', '.join(layout.columns)} FROM {table} "
                                f"WHERE trace_id = ? ORDER BY {order}", (trace_id,)):
            values = list(row)
            for i in json_at:
                values[i] = None if values[i] is None else json.loads(values[i])
            out.append(layout.row(*values))
    return out


def trace_spans_as_stored(conn: apsw.Connection, trace_ids: Sequence[str]) -> list[SpanRow]:
    """Every span of ``trace_ids``, trace by trace, in the order they were stored."""
    return _read(conn, "spans", trace_ids, "rowid")


def trace_logs_as_stored(conn: apsw.Connection, trace_ids: Sequence[str]
                         ) -> list[LogRecordRow]:
    """Every log record of ``trace_ids``, trace by trace, in the order they were stored."""
    return _read(conn, "logs", trace_ids, "log_id")


def trace_findings(conn: apsw.Connection, trace_ids: Sequence[str]) -> list[FindingRow]:
    """Every finding of ``trace_ids``, trace by trace, in the order they were stored."""
    return _read(conn, "findings", trace_ids, "finding_id")


def resource_attributes(conn: apsw.Connection, ids: Iterable[int]) -> dict[int, dict]:
    """The attributes of each resource in ``ids`` that is stored."""
    out = {}
    for resource_id in sorted(set(ids)):
        for (attributes,) in conn.execute(
                "SELECT attributes FROM resources WHERE resource_id = ?", (resource_id,)):
            out[resource_id] = json.loads(attributes)
    return out


def replace_findings(conn: apsw.Connection, rows: list[FindingRow]) -> None:
    """Make ``rows`` the findings of the spans and logs they name; recount the spans'
    and traces' finding counts. Runs inside the caller's transaction."""
    for trace_id, span_id, signal in sorted({(r.trace_id, r.span_id, r.signal) for r in rows
                                             if r.trace_id}, key=str):
        conn.execute("DELETE FROM findings WHERE trace_id = ? AND span_id IS ? AND signal = ?",
                     (trace_id, span_id, signal))
    conn.execute(INSERTS["findings"], (encode_rows(rows).decode(),))
    for trace_id, span_id in sorted({(r.trace_id, r.span_id) for r in rows
                                     if r.signal == "span" and r.trace_id and r.span_id}):
        conn.execute(
            "UPDATE spans SET finding_count = (SELECT count(*) FROM findings AS f "
            "WHERE f.trace_id = spans.trace_id AND f.span_id = spans.span_id "
            "AND f.signal = 'span') WHERE trace_id = ? AND span_id = ?", (trace_id, span_id))
    for trace_id in sorted({r.trace_id for r in rows if r.trace_id}):
        conn.execute(
            "UPDATE traces SET finding_count = (SELECT count(*) FROM findings "
            "WHERE trace_id = traces.trace_id) WHERE trace_id = ?", (trace_id,))


def selected_trace_ids(conn: apsw.Connection, where: Sequence[tuple[str, str]],
                       since_ns: int | None, until_ns: int | None) -> list[str]:
    """Traces with a span whose resource has every attribute of ``where`` (compared as
    text) and that starts in the range, oldest first."""
    parts, bindings = ["1"], []
    for key, value in where:
        path = '$."' + key.replace('"', '\\"') + '"'
        parts.append("(CASE json_type(r.attributes, ?) WHEN 'true' THEN 'true' "
                     "WHEN 'false' THEN 'false' ELSE CAST(r.attributes ->> ? AS TEXT) END) = ?")
        bindings += [path, path, value]
    if since_ns is not None:
        parts.append("s.start_ns >= ?")
        bindings.append(since_ns)
    if until_ns is not None:
        parts.append("s.start_ns <= ?")
        bindings.append(until_ns)
    return [row[0] for row in conn.execute(
        "SELECT s.trace_id FROM spans AS s JOIN resources AS r USING (resource_id) "
        f"WHERE {' AND '.join(parts)} GROUP BY s.trace_id ORDER BY min(s.start_ns)",
        bindings)]
