"""Metric series, kept by the writer, and every read that lists them.

A series is a metric name, type, service and attribute set (attributes as JSON with sorted
keys, as the decoder stores them). The writer keeps one ``metric_series`` row per series
(first and last point time, point count, the newest unit) and sets each new point's
``series_id``, so that a screen lists series by an index (keyset pages, by activity or by
name) and reads the points of the series it shows only, through ``metric_points_series``.

Cardinality is kept as series arrive: ``metric_names`` (series per metric name) and
``metric_label_keys`` (per metric name and attribute key: the series holding the key and
its distinct values, counted against ``metric_label_values``). A new series costs a few
index writes; a point of a known series, one upsert of its row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import apsw
import orjson

from agenttop.store.metrics import PointSample

# Series per metric past which a metric is named as high-cardinality (the dashboard, the
# metrics screen), and the series an alert rule judges by default (its ``max_series``).
CARDINALITY_LIMIT = 1_000

# Series of the points stored after :mark (point_id), as one upsert; the newest point's
# unit is the series' unit.
UPSERT_SERIES = """
INSERT INTO metric_series (name, type, service, attributes, unit, first_ns, last_ns, points)
SELECT name, type, service, attributes, unit, min(time_ns), max(time_ns), count(*)
FROM metric_points WHERE point_id > :mark
GROUP BY name, type, service, attributes
ON CONFLICT (name, type, service, attributes) DO UPDATE SET
    unit = CASE WHEN excluded.last_ns >= last_ns THEN excluded.unit ELSE unit END,
    first_ns = min(first_ns, excluded.first_ns),
    last_ns = max(last_ns, excluded.last_ns),
    points = points + excluded.points
"""
SET_SERIES_IDS = """
UPDATE metric_points SET series_id = (
    SELECT s.series_id FROM metric_series AS s
    WHERE s.name = metric_points.name AND s.type = metric_points.type
      AND s.service = metric_points.service AND s.attributes = metric_points.attributes)
WHERE point_id > :mark
"""
# Cardinality of the series created after :series (series_id). Distinct values are
# counted before they are recorded, so that a value seen before never counts twice.
_NEW_LABELS = """
SELECT DISTINCT s.name, j.key, j.value FROM metric_series AS s, json_each(s.attributes) AS j
WHERE s.series_id > :series
"""
COUNT_NAMES = """
INSERT INTO metric_names (name, series)
SELECT name, count(*) FROM metric_series WHERE series_id > :series GROUP BY name
ON CONFLICT (name) DO UPDATE SET series = series + excluded.series
"""
COUNT_KEYS = f"""
INSERT INTO metric_label_keys (name, key, series, "values")
SELECT k.name, k.key, k.series, coalesce(v.fresh, 0) FROM
    (SELECT s.name, j.key, count(*) AS series
     FROM metric_series AS s, json_each(s.attributes) AS j
     WHERE s.series_id > :series GROUP BY s.name, j.key) AS k
    LEFT JOIN (SELECT n.name, n.key, count(*) AS fresh FROM ({_NEW_LABELS}) AS n
               WHERE NOT EXISTS (SELECT 1 FROM metric_label_values AS v WHERE v.name = n.name
                                 AND v.key = n.key AND v.value IS n.value)
               GROUP BY n.name, n.key) AS v
    ON v.name = k.name AND v.key = k.key
WHERE true
ON CONFLICT (name, key) DO UPDATE SET series = series + excluded.series,
    "values" = "values" + excluded."values"
"""
RECORD_VALUES = f"INSERT OR IGNORE INTO metric_label_values (name, key, value) {_NEW_LABELS}"


def add_points(conn: apsw.Connection, point_mark: int) -> None:
    """Count the points stored after ``point_mark`` into their series (writer only)."""
    series_mark = conn.execute(
        "SELECT coalesce(max(series_id), 0) FROM metric_series").fetchone()[0]
    conn.execute(UPSERT_SERIES, {"mark": point_mark})
    conn.execute(SET_SERIES_IDS, {"mark": point_mark})
    if conn.execute("SELECT 1 FROM metric_series WHERE series_id > ?",
                    (series_mark,)).fetchone():
        for sql in (COUNT_NAMES, COUNT_KEYS, RECORD_VALUES):
            conn.execute(sql, {"series": series_mark})


def forget_series(conn: apsw.Connection, cutoff_ns: int) -> None:
    """Drop the series whose newest point is older than ``cutoff_ns`` and that have no
    point left (retention pruned them), and count their metrics' cardinality again."""
    gone = conn.execute(
        "SELECT series_id, name FROM metric_series AS s WHERE last_ns < ? AND NOT EXISTS "
        "(SELECT 1 FROM metric_points AS p WHERE p.series_id = s.series_id)",
        (cutoff_ns,)).fetchall()
    if not gone:
        return
    ids = orjson.dumps([g[0] for g in gone]).decode()
    conn.execute("DELETE FROM metric_series WHERE series_id IN (SELECT value FROM json_each(?))",
                 (ids,))
    for name in {g[1] for g in gone}:
        recount(conn, name)


def recount(conn: apsw.Connection, name: str) -> None:
    """Count one metric's cardinality again from its series."""
    for table in ("metric_names", "metric_label_keys", "metric_label_values"):
        conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
    conn.execute("INSERT INTO metric_names (name, series) SELECT name, count(*) "
                 "FROM metric_series WHERE name = :name GROUP BY name", {"name": name})
    conn.execute(
        'INSERT INTO metric_label_keys (name, key, series, "values") '
        "SELECT s.name, j.key, count(*), count(DISTINCT j.value) "
        "FROM metric_series AS s, json_each(s.attributes) AS j WHERE s.name = :name "
        "GROUP BY s.name, j.key", {"name": name})
    conn.execute("INSERT INTO metric_label_values (name, key, value) "
                 "SELECT DISTINCT s.name, j.key, j.value "
                 "FROM metric_series AS s, json_each(s.attributes) AS j WHERE s.name = :name",
                 {"name": name})


# --- reads ----------------------------------------------------------------------------------

class SeriesRow(NamedTuple):
    series_id: int
    name: str
    type: str
    service: str
    attributes: str  # JSON text, sorted keys
    unit: str
    first_ns: int
    last_ns: int
    points: int


_SERIES_COLUMNS = ", ".join(SeriesRow._fields)
_ORDER = {"activity": "last_ns DESC, series_id DESC",
          "name": "name, type, service, attributes"}


def _where(since_ns: int, text: str) -> tuple[str, dict]:
    where, bindings = "last_ns > :since", {"since": since_ns}
    if text:
        # Name, service or an attribute: whatever the user remembers of the series.
        where += (" AND (instr(lower(name), :text) OR instr(lower(service), :text) "
                  "OR instr(lower(attributes), :text))")
        bindings["text"] = text.lower()
    return where, bindings


def list_series(conn: apsw.Connection, since_ns: int, *, sort: str = "activity",
                text: str = "", limit: int = 200) -> list[SeriesRow]:
    """Up to ``limit`` series with a point after ``since_ns``, most recently active first
    (``sort="activity"``) or by name; ``text`` keeps those whose name, service or
    attributes contain it. Read from an index in that order: the cost follows ``limit``."""
    where, bindings = _where(since_ns, text)
    bindings["limit"] = limit
    return [SeriesRow(*r) for r in conn.execute(
        f"SELECT {_SERIES_COLUMNS} FROM metric_series WHERE {where} "
        f"ORDER BY {_ORDER[sort]} LIMIT :limit", bindings)]


def count_series(conn: apsw.Connection, since_ns: int, *, text: str = "",
                 cap: int = 10_000) -> int:
    """Series with a point after ``since_ns`` (matching ``text``), counted up to ``cap``."""
    where, bindings = _where(since_ns, text)
    bindings["cap"] = cap
    return conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM metric_series WHERE {where} "
                        "LIMIT :cap)", bindings).fetchone()[0]


def metric_series(conn: apsw.Connection, name: str, since_ns: int,
                  service: str | None = None) -> Iterator[SeriesRow]:
    """The series of metric ``name`` (of ``service``) with a point after ``since_ns``,
    most recently active first, read lazily from ``metric_series_name_last``: a caller
    taking the first N reads about N rows."""
    sql = (f"SELECT {_SERIES_COLUMNS} FROM metric_series WHERE name = :name AND "
           "last_ns > :since" + (" AND service = :service" if service is not None else "")
           + " ORDER BY last_ns DESC")
    for row in conn.execute(sql, {"name": name, "since": since_ns, "service": service}):
        yield SeriesRow(*row)


# A series' points carry its id after the PointSample fields, at this index.
SERIES_ID = len(PointSample._fields)
_SERIES_POINTS = f"""
SELECT {", ".join(f"p.{c}" for c in PointSample._fields)}, p.series_id
FROM json_each(:ids) AS s CROSS JOIN metric_points AS p
WHERE p.series_id = s.value AND p.time_ns > :lo AND p.time_ns <= :hi
"""


def series_points(conn: apsw.Connection, series_ids: Sequence[int], lo_ns: int, hi_ns: int
                  ) -> Iterator[tuple]:
    """Points (``PointSample`` layout, then ``series_id``) of these series with
    ``lo_ns < time_ns <= hi_ns``: one range of ``metric_points_series`` per series."""
    return iter(conn.execute(_SERIES_POINTS, {"ids": orjson.dumps(list(series_ids)).decode(),
                                              "lo": lo_ns, "hi": hi_ns}))


class NameCardinality(NamedTuple):
    name: str
    series: int


class KeyCardinality(NamedTuple):
    name: str
    key: str
    series: int  # series holding the key
    values: int  # distinct values of the key


def series_by_name(conn: apsw.Connection, limit: int = 200) -> list[NameCardinality]:
    """Metric names with the most series first."""
    return [NameCardinality(*r) for r in conn.execute(
        "SELECT name, series FROM metric_names ORDER BY series DESC, name LIMIT ?", (limit,))]


def keys_of(conn: apsw.Connection, name: str) -> list[KeyCardinality]:
    """One metric's attribute keys, the most distinct values first."""
    return [KeyCardinality(*r) for r in conn.execute(
        'SELECT name, key, series, "values" FROM metric_label_keys WHERE name = ? '
        'ORDER BY "values" DESC, key', (name,))]


def names_over(conn: apsw.Connection, limit: int) -> list[NameCardinality]:
    """Metric names with more than ``limit`` series, the most first."""
    return [NameCardinality(*r) for r in conn.execute(
        "SELECT name, series FROM metric_names WHERE series > ? ORDER BY series DESC, name",
        (limit,))]


def total_series(conn: apsw.Connection, name: str) -> int:
    """Series of metric ``name`` ever kept (0 for none)."""
    row = conn.execute("SELECT series FROM metric_names WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0
