"""The metrics screen, the alerts screen and the dashboard on a high-cardinality file: pages
read by SQL, figures only for the rows on screen, cardinality shown, capped rules named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from agenttop.store import open_writer
from agenttop.store.status import write_heartbeat
from agenttop.tui.app import make_app
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.metrics import MetricsScreen, MetricTable
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import NOW, frozen_clock, kvs, metrics_request, write

SERIES = 1_500  # of one metric: past the cardinality limit


@pytest.fixture(scope="module")
def crowded_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("crowded") / "crowded.db"
    points = [NumberDataPoint(time_unix_nano=NOW - 10**9 * (2 + i % 50), as_double=i / SERIES,
                              attributes=kvs({"route": f"r{i:04}", "region": "eu"}))
              for i in range(SERIES)]
    write(db, ("metrics", metrics_request("quality", [
        Metric(name="route_quality", unit="1", gauge=Gauge(data_points=points)),
        Metric(name="queue_depth", unit="1", gauge=Gauge(data_points=[
            NumberDataPoint(time_unix_nano=NOW - 10**9, as_double=7.0)]))])))
    conn = open_writer(db)
    status = {"alerts": {"pending": [], "capped": [
        {"rule": "quality", "judged": 1000, "series": SERIES}]}}
    write_heartbeat(conn, started_ns=NOW, now_ns=NOW, status=status)
    conn.close()
    return db


async def test_the_metrics_screen_reads_a_page_and_figures_for_the_rows_on_screen(crowded_db):
    app = make_app(crowded_db, refresh_s=60.0, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, MetricsScreen))
        await refreshed(pilot)
        screen = app.screen
        table = screen.query_one(MetricTable)
        assert table.row_count == 200  # one page of 1,501
        assert f"1–200 of {SERIES + 1:,}" in screen_text(app)
        # Most recently active first: the gauge sent a second ago, then the routes.
        assert table.items[table.keys[0]].name == "queue_depth"
        data = screen.data
        assert data.figured < 60 and len(data.health) == data.figured
        first, last = table.keys[0], table.keys[-1]
        assert table.get_cell(first, "figures").plain == "7"
        assert table.get_cell(last, "figures").plain == "–"  # no figures below the screen
        assert table.get_cell(last, "name").plain == "route_quality"
        assert f"route_quality {SERIES:,}" in screen_text(app)  # the crowded metric, named
        # Scrolling past the figured rows reads theirs.
        table.move_cursor(row=data.figured + 5)
        await refreshed(pilot)
        assert screen.data.figured > data.figured

        await pilot.press("c")  # cardinality: per name, and the selected metric's keys
        await refreshed(pilot)
        pane = rendered(screen.query_one("#metric-cardinality"))
        assert f"{SERIES:,}  route_quality" in pane
        assert "Attribute keys of route_quality" in pane
        assert "1,500      1,500  route" in pane and "1      1,500  region" in pane

        await pilot.press("slash", *"r0042")  # by text in the attributes
        await refreshed(pilot)
        assert [table.items[k].attributes for k in table.keys] == [
            json.dumps({"region": "eu", "route": "r0042"}, separators=(",", ":"))]
        await pilot.press("escape", "escape", "s")  # by name
        await refreshed(pilot)
        assert table.items[table.keys[0]].name == "queue_depth"
        assert table.items[table.keys[1]].attributes.endswith('"r0000"}')


async def test_the_dashboard_and_alerts_name_the_crowded_metric_and_the_capped_rule(
        crowded_db):
    app = make_app(crowded_db, refresh_s=60.0, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await refreshed(pilot)
        line = rendered(app.screen.query_one("#cardinality-line"))
        assert "high cardinality: route_quality 1,500 series" in line
        await pilot.press("3")
        await refreshed(pilot)
        assert ("rule quality judges the 1000 most recently active of 1500 series"
                in screen_text(app))
