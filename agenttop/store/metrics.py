"""Reads of ``metric_points`` by time window, for the figures of each metric series.

Every metric name is found by a loose index scan (one seek of the ``(name, time_ns)`` index
per distinct name), then each name's window is a range of the same index: the cost follows
the points in the window, not the points in the file. JSON columns (attributes, bucket
counts, quantiles) come back as their stored text, parsed only by whoever needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import apsw
import orjson


class PointSample(NamedTuple):
    """One stored data point, as the metric figures read it: the layout of the rows
    ``points_between`` returns (plain tuples in this field order: a refresh reads every
    point of the widest window, and wrapping each would cost more than reading it; read
    fields by name with ``field_getter``)."""

    name: str
    type: str
    unit: str
    temporality: int | None
    monotonic: int | None
    service: str
    attributes: str  # JSON text, as stored
    start_ns: int
    time_ns: int
    value: int | float | None
    count: int | None
    min: float | None
    max: float | None
    bounds: str | None  # JSON text
    bucket_counts: str | None  # JSON text
    scale: int | None
    zero_count: int | None
    positive_offset: int | None
    positive_counts: str | None  # JSON text
    negative_offset: int | None
    negative_counts: str | None  # JSON text
    quantiles: str | None  # JSON text


_COLUMNS = ", ".join(f"p.{c}" for c in PointSample._fields)
_ALL_POINTS = f"""
WITH RECURSIVE names(name) AS (
    SELECT min(name) FROM metric_points
    UNION ALL
    SELECT (SELECT min(name) FROM metric_points WHERE name > names.name)
    FROM names WHERE names.name IS NOT NULL
)
SELECT {_COLUMNS} FROM names CROSS JOIN metric_points AS p
WHERE p.name = names.name AND p.time_ns > :lo AND p.time_ns <= :hi
"""
_NAMED_POINTS = f"""
SELECT {_COLUMNS} FROM json_each(:names) AS n CROSS JOIN metric_points AS p
WHERE p.name = n.value AND p.time_ns > :lo AND p.time_ns <= :hi
"""


def field_getter(*names: str) -> Callable[[tuple], Any]:
    """A function reading the named ``PointSample`` fields of a row (a tuple of them for
    several names), in C."""
    return itemgetter(*(PointSample._fields.index(name) for name in names))


def points_between(conn: apsw.Connection, lo_ns: int, hi_ns: int,
                   names: Sequence[str] | None = None) -> Iterator[tuple]:
    """Points with ``lo_ns < time_ns <= hi_ns`` of every metric, or of ``names`` only."""
    bindings: dict[str, object] = {"lo": lo_ns, "hi": hi_ns}
    if names is None:
        sql = _ALL_POINTS
    else:
        sql = _NAMED_POINTS
        bindings["names"] = orjson.dumps(list(names)).decode()
    return iter(conn.execute(sql, bindings))
