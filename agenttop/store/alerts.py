"""Alert episodes in the ``alerts`` table: the identity of an alert, and every read and
write of its episodes.

An alert is one rule watching one subject: a layer rule has one alert, a metric rule one
per matching series, told apart by the series' labels (service and attributes). Its
identity is an ``AlertKey`` value; the ``rule`` column holds its display form
(``output-quality{service=a,route=chat}``) for people who query the file, and
``rule_name`` and ``labels`` hold its parts, so nothing parses the display form back.

Writes run inside the caller's transaction (``Writer.call``): none begins or commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

from agenttop.store.db import scalar


@dataclass(frozen=True, slots=True)
class AlertKey:
    """One alert's identity: the rule's name and, for a metric rule, its series' labels
    (``None`` for a layer rule; a series without labels has ``()``)."""

    rule: str
    labels: tuple[tuple[str, str], ...] | None = None

    def __str__(self) -> str:
        """The display form, also stored in the ``rule`` column."""
        return self.rule + self.series

    @property
    def series(self) -> str:
        """``{service=a,route=chat}`` for a metric series; empty for a layer rule."""
        if self.labels is None:
            return ""
        return "{" + ",".join(f"{k}={v}" for k, v in self.labels) + "}"

    @property
    def service(self) -> str | None:
        """The service label of a metric series, if it has one."""
        return dict(self.labels or ()).get("service")

    def labels_json(self) -> str | None:
        return None if self.labels is None else json.dumps(self.labels)

    @classmethod
    def stored(cls, display: str, rule_name: str | None, labels: str | None) -> AlertKey:
        """From the columns of a row. Rows written before ``rule_name`` existed keep their
        display form as the name: such a key still equals the same alert's new key by
        ``str()``, which is what the writes below match on."""
        if rule_name is None:
            return cls(display)
        return cls(rule_name, None if labels is None else tuple(
            (str(k), str(v)) for k, v in json.loads(labels)))


@dataclass(frozen=True, slots=True)
class AlertEpisode:
    """One row of ``alerts``: a firing or resolved episode of one alert."""

    alert_id: int
    key: AlertKey
    layer: str | None
    metric: str | None
    measure: str
    op: str
    state: str  # firing | resolved
    value: float | None
    threshold: float
    window_s: int
    started_ns: int
    resolved_ns: int | None
    updated_ns: int
    message: str


_COLUMNS = ("alert_id, rule, rule_name, labels, layer, metric, measure, op, state, value, "
            "threshold, window_s, started_ns, resolved_ns, updated_ns, message")


def _episode(row: tuple) -> AlertEpisode:
    alert_id, display, rule_name, labels, *rest = row
    return AlertEpisode(alert_id, AlertKey.stored(display, rule_name, labels), *rest)


def _episodes(conn: apsw.Connection, where: str, bindings: tuple = ()) -> list[AlertEpisode]:
    return [_episode(row) for row in conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE {where}", bindings)]


# --- writes

def start_episode(conn: apsw.Connection, key: AlertKey, *, layer: str | None,
                  metric: str | None, measure: str, op: str, value: float | None,
                  threshold: float, window_s: int, started_ns: int, message: str) -> None:
    """A new firing episode; one still open for the same alert (left by a crash between
    restarts) is closed as superseded first: at most one episode per alert is open."""
    conn.execute("UPDATE alerts SET state = 'resolved', resolved_ns = :at, updated_ns = :at, "
                 "message = message || '; superseded by a new episode' "
                 "WHERE rule = :key AND state = 'firing'", {"key": str(key), "at": started_ns})
    conn.execute(
        "INSERT INTO alerts (rule, rule_name, labels, layer, metric, measure, op, state, value, "
        "threshold, window_s, started_ns, resolved_ns, updated_ns, message) VALUES (?, ?, ?, "
        "?, ?, ?, ?, 'firing', ?, ?, ?, ?, NULL, ?, ?)",
        (str(key), key.rule, key.labels_json(), layer, metric, measure, op, value, threshold,
         window_s, started_ns, started_ns, message))


def resolve_episode(conn: apsw.Connection, key: AlertKey, *, at_ns: int, value: float | None,
                    message: str) -> bool:
    """Close the alert's open episode (every one, should a crash have left two); False
    when none was open."""
    conn.execute("UPDATE alerts SET state = 'resolved', resolved_ns = :at, updated_ns = :at, "
                 "value = :value, message = message || '; ' || :message "
                 "WHERE rule = :key AND state = 'firing'",
                 {"key": str(key), "at": at_ns, "value": value, "message": message})
    return conn.changes() > 0


def refresh_episode(conn: apsw.Connection, key: AlertKey, *, started_ns: int,
                    value: float | None, at_ns: int) -> None:
    """The current value of a firing episode."""
    conn.execute("UPDATE alerts SET value = ?, updated_ns = ? "
                 "WHERE rule = ? AND state = 'firing' AND started_ns = ?",
                 (value, at_ns, str(key), started_ns))


# --- reads

def load_firing(conn: apsw.Connection) -> list[AlertEpisode]:
    """The episodes firing now, oldest first."""
    return _episodes(conn, "state = 'firing' ORDER BY started_ns, alert_id")


def alert_episodes(conn: apsw.Connection, *, limit: int = 200, cap: int = 10_000
                   ) -> tuple[list[AlertEpisode], list[AlertEpisode], int, int]:
    """The newest ``limit`` firing episodes and the newest ``limit`` resolved ones, and
    how many of each there are (counted up to ``cap``); all read through
    ``alerts_state``, so the cost follows ``limit`` and ``cap``, not the history."""
    firing = _episodes(conn, "state = 'firing' ORDER BY started_ns DESC, alert_id DESC "
                             "LIMIT ?", (limit,))
    resolved = _episodes(conn, "state = 'resolved' ORDER BY started_ns DESC, alert_id DESC "
                               "LIMIT ?", (limit,))
    return firing, resolved, count_state(conn, "firing", cap), count_state(conn, "resolved",
                                                                            cap)


def count_state(conn: apsw.Connection, state: str, cap: int | None = None) -> int:
    """Episodes in ``state`` (counted up to ``cap``)."""
    return int(scalar(conn, "SELECT count(*) FROM (SELECT 1 FROM alerts WHERE state = ? "
                            "LIMIT ?)", (state, -1 if cap is None else cap)) or 0)  # type: ignore[arg-type]


def alert_changes(conn: apsw.Connection, after_id: int | None, watched: Sequence[int] = ()
                  ) -> tuple[int, list[AlertEpisode]]:
    """The newest alert id, and the episodes firing now, written after ``after_id`` (None:
    firing ones only) or ``watched`` (those firing at the last read: how each resolved).
    What the UI compares between refreshes to notify."""
    top = int(scalar(conn, "SELECT coalesce(max(alert_id), 0) FROM alerts") or 0)  # type: ignore[arg-type]
    return top, _episodes(
        conn, "state = 'firing' OR alert_id > ? OR alert_id IN (SELECT value FROM "
              "json_each(?)) ORDER BY alert_id",
        (top if after_id is None else after_id, json.dumps(list(watched))))
