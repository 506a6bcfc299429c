"""Metric series and cardinality kept by the writer, page-bounded reads of them, and the
alert evaluator's per-rule series cap and idle ticks, on files built through the writer."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from agenttop.analysis.health import metric_health, series_health
from agenttop.analysis.monitor import AlertMonitor
from agenttop.analysis.rules import Rule
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store import series as sql
from agenttop.store.retention import prune_by_age
from agenttop.store.series import (
    count_series,
    keys_of,
    list_series,
    metric_series,
    series_by_name,
    series_points,
)
from agenttop.store.status import data_version
from agenttop.store.writer import Writer
from tests.test_health import kvs, metrics

S = 10**9
MINUTE = 60 * S
NOW = 1_700_000_000 * S // MINUTE * MINUTE + 30 * S


def gauges(name: str, label_sets: list[dict], at_ns: int, value: float = 1.0,
           service: str = "svc") -> bytes:
    points = [NumberDataPoint(time_unix_nano=at_ns, as_double=value, attributes=kvs(attrs))
              for attrs in label_sets]
    return metrics(service, [Metric(name=name, unit="1", gauge=Gauge(data_points=points))])


def write(path: Path, *bodies: bytes, received_ns: int = NOW) -> None:
    writer = Writer(open_writer(path))
    writer._write([decode("metrics", body, received_ns) for body in bodies])
    writer.close()


def plan(conn: apsw.Connection, sql: str, bindings: dict | tuple = ()) -> str:
    return "\n".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, bindings))


def test_the_writer_keeps_series_and_their_cardinality(tmp_path):
    db = tmp_path / "s.db"
    routes = [{"route": f"r{i}", "region": "eu" if i % 2 else "us"} for i in range(30)]
    write(db, gauges("latency", routes, NOW - 2 * MINUTE))
    # Again a minute later, keys in the other order: the same 30 series, not 60.
    write(db, gauges("latency", [{"region": r["region"], "route": r["route"]} for r in routes],
                     NOW - MINUTE), gauges("depth", [{}], NOW - MINUTE))
    conn = open_reader(db)
    rows = list_series(conn, NOW - 5 * MINUTE, limit=100)
    assert len(rows) == 31 == count_series(conn, NOW - 5 * MINUTE)
    latency = [r for r in rows if r.name == "latency"]
    assert {(r.points, r.first_ns, r.last_ns) for r in latency} == {
        (2, NOW - 2 * MINUTE, NOW - MINUTE)}
    assert latency[0].attributes.startswith('{"region"')  # keys sorted
    assert series_by_name(conn) == [("latency", 30), ("depth", 1)]
    assert [(k.key, k.series, k.values) for k in keys_of(conn, "latency")] == [
        ("route", 30, 30), ("region", 30, 2)]
    assert conn.execute("SELECT count(*) FROM metric_points WHERE series_id IS NULL"
                        ).fetchone() == (0,)
    # By name, filtered by text in the attributes.
    assert [r.name for r in list_series(conn, 0, sort="name", limit=2)] == ["depth",
                                                                            "latency"]
    assert count_series(conn, 0, text='"r1"') == 1
    # Read by series, the figures are those of every series read at once.
    ids = [r.series_id for r in rows]
    assert sorted(m.last for m in series_health(conn, ids, NOW, (300,))[300]) == sorted(
        m.last for m in metric_health(conn, NOW, (300,))[300])


def test_the_screen_and_evaluator_reads_are_bounded_by_their_page(tmp_path):
    """On a high-cardinality file, each read of a page walks an index in its order and
    stops at the page: the plans use the intended indexes and never scan a table."""
    db = tmp_path / "many.db"
    write(db, *(gauges(f"quality_{n}", [{"route": f"r{i}"} for i in range(500)], NOW - MINUTE)
                for n in range(6)))
    conn = open_reader(db)
    assert count_series(conn, 0, cap=100_000) == 3000
    since = {"since": NOW - 5 * MINUTE, "limit": 50, "text": "x"}
    by_activity = plan(conn, f"SELECT {sql._SERIES_COLUMNS} FROM metric_series WHERE "
                             f"last_ns > :since ORDER BY {sql._ORDER['activity']} LIMIT :limit",
                       since)
    assert "USING INDEX metric_series_last" in by_activity and "TEMP B-TREE" not in by_activity
    by_name = plan(conn, f"SELECT {sql._SERIES_COLUMNS} FROM metric_series WHERE "
                         f"last_ns > :since ORDER BY {sql._ORDER['name']} LIMIT :limit", since)
    assert "USING INDEX metric_series_key" in by_name and "TEMP B-TREE" not in by_name
    points = plan(conn, sql._SERIES_POINTS, {"ids": "[1,2]", "lo": 0, "hi": NOW})
    assert "USING INDEX metric_points_series (series_id=? AND time_ns>? AND time_ns<?)" in points
    rule = plan(conn, f"SELECT {sql._SERIES_COLUMNS} FROM metric_series WHERE name = :name "
                      "AND last_ns > :since ORDER BY last_ns DESC",
                {"name": "quality_1", "since": 0})
    assert "USING INDEX metric_series_name_last (name=? AND last_ns>?)" in rule
    assert "TEMP B-TREE" not in rule
    # By name the walk is the whole key index in order, stopping at the page (LIMIT).
    for p in (by_activity, by_name, points, rule):
        assert "SCAN metric_points" not in p
        assert all("USING" in line for line in p.splitlines() if "metric_series" in line)
    # What a page reads: its rows, and its series' points only.
    page = list_series(conn, 0, limit=50)
    assert len(page) == 50
    assert len(list(series_points(conn, [r.series_id for r in page], 0, NOW))) == 50
    # The evaluator takes the first N lazily.
    first = metric_series(conn, "quality_1", 0)
    assert [next(first).name for _ in range(3)] == ["quality_1"] * 3


def rule(**fields) -> Rule:
    return Rule.model_validate({"name": "quality", "metric": "quality_0", "measure": "last",
                                "op": "<", "threshold": 0.5, "window": "5m", **fields})


def test_a_rule_judges_at_most_max_series_and_says_so(tmp_path):
    db = tmp_path / "cap.db"
    low = [{"route": f"r{i}"} for i in range(12)]
    write(db, gauges("quality_0", low, NOW - MINUTE, value=0.1))
    writer = Writer(open_writer(db))
    writer.start()
    try:
        monitor = AlertMonitor(db, writer, [rule(max_series=5)], clock=lambda: NOW)
        fired = monitor.tick()
        assert len(fired) == 5
        assert monitor.status()["capped"] == [{"rule": "quality", "judged": 5, "series": 12}]
        # An attribute filter is applied before the cap: one series, not capped.
        monitor = AlertMonitor(db, writer, [rule(attributes={"route": "r7"})],
                               clock=lambda: NOW)
        assert [str(t.key) for t in monitor.tick()] == ["quality{service=svc,route=r7}"]
        assert monitor.status()["capped"] == []
    finally:
        monitor.close()
        writer.close()


def test_an_idle_evaluator_reads_nothing_again(tmp_path, monkeypatch, caplog):
    db = tmp_path / "idle.db"
    write(db, gauges("quality_0", [{"route": "a"}], NOW - MINUTE, value=0.1))
    writer = Writer(open_writer(db))
    writer.start()
    now = [NOW]
    monitor = AlertMonitor(db, writer, [rule()], clock=lambda: now[0])
    reads = []
    real = monitor.read_figures
    monkeypatch.setattr(monitor, "read_figures", lambda at: reads.append(at) or real(at))
    try:
        assert len(monitor.tick()) == 1  # fires, and writes the episode
        now[0] += 5 * S
        assert monitor.tick() == [] and len(reads) == 1  # its own write is no news
        done = writer.call(lambda conn: None)
        done.result(10)
        writer.try_submit(decode("metrics", gauges("quality_0", [{"route": "a"}], NOW,
                                                   value=0.9), NOW), lambda error: None)
        writer.call(lambda conn: None).result(10)
        now[0] += 5 * S
        resolved = monitor.tick()
        assert len(reads) == 2 and [t.state for t in resolved] == ["resolved"]
        # The log says it once: "alert resolved: quality_0{…} last 0.9 (not < 0.5) …".
        [line] = [r.getMessage() for r in caplog.records if "resolved" in r.getMessage()]
        assert line.startswith("alert resolved: quality_0") and line.count("resolved") == 1
        now[0] += MINUTE  # a new minute: windows slide, figures are read again
        monitor.tick()
        assert len(reads) == 3
    finally:
        monitor.close()
        writer.close()


def test_retention_prunes_points_by_series_and_forgets_empty_series(tmp_path):
    db = tmp_path / "old.db"
    write(db, gauges("old", [{"k": "a"}, {"k": "b"}], NOW - 3 * MINUTE),
          gauges("kept", [{"k": "a"}], NOW - 3 * MINUTE), received_ns=NOW - 3 * MINUTE)
    write(db, gauges("kept", [{"k": "a"}], NOW))
    conn = open_writer(db)
    before = data_version(conn)
    with conn:
        step = prune_by_age(conn, NOW - 2 * MINUTE, NOW)
    assert step.rows == 3 and data_version(conn) == before + 1
    assert [(r.name, r.first_ns) for r in list_series(conn, 0)] == [("kept", NOW)]
    assert series_by_name(conn) == [("kept", 1)]
    assert keys_of(conn, "old") == []
    with conn:
        assert not prune_by_age(conn, NOW - 2 * MINUTE, NOW).more  # nothing left: no news
    assert data_version(conn) == before + 1


@pytest.mark.parametrize("key_order", [("a", "b"), ("b", "a")])
def test_a_series_is_one_whatever_the_key_order(tmp_path, key_order):
    db = tmp_path / "o.db"
    values = {"a": 1, "b": 2}
    write(db, gauges("m", [{k: values[k] for k in key_order}], NOW - MINUTE),
          gauges("m", [{"a": 1, "b": 2}], NOW))
    conn = open_reader(db)
    assert [(r.attributes, r.points) for r in list_series(conn, 0)] == [('{"a":1,"b":2}', 2)]
