"""The metrics (5) and logs (6) screens and the command palette, over the demo database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
from textual.command import CommandPalette
from textual.widgets import Input

from agenttop.analysis.health import metric_health
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.writer import Writer
from agenttop.tui.app import make_app
from agenttop.tui.commands import (
    AgentTopCommands,
    ScreenCommands,
    TraceIdPrompt,
    jump_to_trace,
)
from agenttop.tui.screens.logs import LogsScreen, LogTable, log_messages
from agenttop.tui.screens.metrics import MetricsScreen, MetricTable, read_metrics, value
from agenttop.tui.screens.trace import TraceScreen
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import (
    NOW,
    SERVER,
    frozen_clock,
    hex_span,
    hex_trace,
    log_record,
    logs_request,
    span,
    traces_request,
    write,
)


def app_for(db: Path):
    return make_app(db, refresh_s=60.0, clock=frozen_clock)


async def open_screen(pilot, key: str, cls: type) -> object:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, cls), what=cls.__name__)
    await refreshed(pilot)
    return pilot.app.screen


# --- metrics ------------------------------------------------------------------------------

def test_metric_figures_read_naturally(demo_db):
    conn = open_reader(demo_db)
    data = read_metrics(conn, NOW, 300)
    # Read by series, the figures are those of every series read at once.
    everything = metric_health(conn, NOW, (300,))[300]
    assert sorted(data.health.values(), key=repr) == sorted(
        (replace(m, series_id=s.series_id) for m in everything for s in data.rows
         if (s.name, s.service, orjson.loads(s.attributes)) == (m.name, m.service,
                                                                 m.attributes)), key=repr)
    assert len(data.health) == len(everything) == data.total
    by_name = {(m.name, tuple(sorted(m.attributes.items()))): m for m in data.health.values()}
    chat = by_name[("requests_total", (("route", "/chat"),))]
    assert chat.rate is not None and 0.5 < chat.rate < 3
    latency = by_name[("request_latency", (("route", "/chat"),))]
    assert latency.p50 < latency.p95 < latency.p99 < 5
    assert value(latency.p50, "s").endswith("ms") and value(latency.p99, "s").endswith("s")
    assert value(0.63, "1") == "0.63"
    assert all(len(line) == 15 for line in data.trends.values())


async def test_metrics_screen_lists_every_series(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "5", MetricsScreen)
        text = rendered(screen.query_one(MetricTable))
        assert "requests_total" in text and "request_latency (s)" in text
        assert "output_quality_score" in text
        assert "1.2/s" in text and "0.5/s" in text  # counters: a rate per second
        assert "p50 288ms p95 2.15s p99 3.43s" in text  # histogram: quantiles in seconds
        assert "0.63" in text  # gauge: the last value
        assert "window 5m" in screen_text(app)
        await pilot.press("w")
        await refreshed(pilot)
        assert screen.window_s == 900 and "window 15m" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        detail = rendered(screen.query_one("#metric-detail"))
        assert "points in the window" in detail


# --- logs ---------------------------------------------------------------------------------

def test_genai_events_read_as_messages():
    assert log_messages("gen_ai.user.message", '{"content": "hi"}') == [("user", "hi")]
    assert log_messages("gen_ai.choice", '{"index": 0, "message": {"role": "assistant", '
                        '"content": "yes"}}') == [("assistant", "yes")]
    assert log_messages("gen_ai.assistant.message",
                        '{"parts": [{"type": "text", "content": "ok"}]}') == [
        ("assistant", "ok")]
    assert log_messages("gen_ai.user.message", "not json") is None
    assert log_messages(None, '{"content": "x"}') is None


async def test_logs_newest_first_filters_and_messages(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "6", LogsScreen)
        table = screen.query_one(LogTable)
        rows = [table.items[k] for k in table.keys]
        assert len(rows) == 25
        times = [r.time_ns for r in rows]
        assert times == sorted(times, reverse=True)
        text = rendered(table)
        assert "user: Where is my order 1021?" in text
        assert "assistant: Order 1021 ships tomorrow." in text
        assert "system: You are a support agent." in text

        await pilot.press("v", "v")  # WARN+
        await refreshed(pilot)
        assert {r.severity_number >= 13 for r in table.items.values()} == {True}
        assert len(table.keys) == 6  # 3 rate limits, 2 auth errors, 1 disk warning
        await pilot.press("v")  # ERROR+
        await refreshed(pilot)
        assert len(table.keys) == 2 and "invalid_token" in rendered(table)
        await pilot.press("v")  # all again
        await refreshed(pilot)
        assert len(table.keys) == 25

        await pilot.press("slash")
        await pilot.press(*"rate limited")
        await refreshed(pilot)
        assert len(table.keys) == 3
        assert "1–3 of 3" in screen_text(app)
        await pilot.press("escape", "escape")
        await refreshed(pilot)
        assert screen.query_one("#log-filter", Input).value == "" and len(table.keys) == 25


async def test_enter_on_a_log_opens_its_span(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "6", LogsScreen)
        table = screen.query_one(LogTable)
        # The newest log has no trace: a notice, no jump.
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LogsScreen)
        assert any("not linked" in str(n.message) for n in app._notifications)

        index = next(i for i, k in enumerate(table.keys)
                     if table.items[k].event_name == "gen_ai.choice")
        row = table.items[table.keys[index]]
        table.move_cursor(row=index)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen), what="trace")
        trace = app.screen
        assert trace.trace_id == row.trace_id == hex_trace("run-21")
        target = hex_span("run-21", "chat gpt-4o")
        await wait_for(pilot, lambda: trace.detail_span_id == target, what="the log's span")
        assert trace.tree.cursor_node.data == target


async def test_hostile_log_body_renders_literally(tmp_path):
    db = tmp_path / "agenttop.db"
    evil = "[/] [bold]loud[/bold] \x1b[2J\x1b]0;pwned\x07 end"
    write(db, ("traces", traces_request([("svc", [span("t", "root", base_ns=NOW - 10**10,
                                                       kind=SERVER)])])))
    request = logs_request("[i]svc[/i]", [
        log_record("t", "root", at_ns=NOW - 10**10, body=evil, severity=17),
        log_record("t", "root", at_ns=NOW - 2 * 10**10, severity=9,
                   event_name="gen_ai.user.message",
                   body='{"content": "[red]hi[/red] \\u001b[31m"}')])
    writer = Writer(open_writer(db))
    try:
        writer._write([decode("logs", request, NOW)])
    finally:
        writer.close()
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "6", LogsScreen)
        listed = rendered(screen.query_one(LogTable))
        assert "[/] [bold]loud[/bold] \\x1b[2J\\x1b]0;pwned\\x07 end" in listed
        assert "user: [red]hi[/red] \\x1b[31m" in listed
        assert "[i]svc[/i]" in listed
        detail = rendered(screen.query_one("#log-detail"))
        assert "[bold]loud[/bold]" in detail and "\x1b" not in detail
        shot = app.export_screenshot()
        assert "\x1b" not in shot and "\x07" not in shot


# --- command palette ----------------------------------------------------------------------

async def test_palette_jumps_to_a_trace(demo_db):
    app = app_for(demo_db)
    wanted = hex_trace("run-3")
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        app.action_command_palette()
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*wanted[:10])
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen), what="trace")
        assert app.screen.trace_id == wanted

        await pilot.press("escape")
        jump_to_trace(app, "ffffffff0000")
        await wait_for(pilot, lambda: any("no trace ffffffff0000" in str(n.message)
                                          for n in app._notifications), what="notice")

        # "Jump to trace id…" asks for the id.
        app.action_command_palette()
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"jump to trace")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceIdPrompt), what="prompt")
        await pilot.press(*hex_trace("run-9")[:8], "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen)
                       and app.screen.trace_id == hex_trace("run-9"), what="trace")


async def test_palette_offers_screen_actions(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "6", LogsScreen)
        names = [name for name, _, _ in AgentTopCommands(screen).commands()]
        names += [name for name, _, _ in ScreenCommands(screen).commands()]
        assert "Jump to trace id…" in names and "Cycle log severity" in names
        assert "Filter logs" in names and "Follow newest" in names
        assert ("Toggle alert bell" in names) == hasattr(app, "action_toggle_bell")
        system = [c.title for c in app.get_system_commands(screen)]
        assert "Screen: Metrics" in system and "Screen: Logs" in system


async def test_new_logs_arrive_on_top_and_the_cursor_stays(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "6", LogsScreen)
        table = screen.query_one(LogTable)
        table.move_cursor(row=3)
        await pilot.pause()
        selected = table.selected_item()
        write(demo_db, ("logs", logs_request("late", [
            log_record("run-0", "chat gpt-4o", at_ns=NOW - 5 * 10**9, body="a new one")])))
        await refreshed(pilot)
        assert table.items[table.keys[0]].body == "a new one"
        assert "a new one" in rendered(table).splitlines()[1]  # under the header
        assert table.selected_item() == selected and table.cursor_row == 4
        await pilot.press("f")
        assert table.cursor_row == 0 and screen.follow


async def test_series_of_one_metric_read_by_the_values_that_tell_them_apart(tmp_path):
    from opentelemetry.proto.metrics.v1.metrics_pb2 import (
        Histogram,
        HistogramDataPoint,
        Metric,
    )

    from tests.tui.fixtures import kvs, metrics_request

    db = tmp_path / "agenttop.db"
    shared = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
              "gen_ai.request.model": "gpt-4o-mini", "error.type": "language_model_error"}
    points = [HistogramDataPoint(
        start_time_unix_nano=NOW - 120 * 10**9, time_unix_nano=NOW - 10**9, count=3, sum=30.0,
        explicit_bounds=[10.0], bucket_counts=[2, 1],
        attributes=kvs({**shared, "gen_ai.token.type": kind})) for kind in ("input", "output")]
    write(db, ("metrics", metrics_request("research-agent", [Metric(
        name="gen_ai.client.token.usage", unit="{token}",
        histogram=Histogram(data_points=points, aggregation_temporality=2))])))
    app = make_app(db, refresh_s=3600, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "5", MetricsScreen)
        lines = [line for line in rendered(screen.table).splitlines()
                 if "gen_ai.client.token" in line]
        assert len(lines) == 2
        # Each row's own token type comes first, before what the two share.
        assert {line.split()[3] for line in lines} == {"type=input,", "type=output,"}
        await pilot.resize_terminal(200, 40)
        await pilot.pause(0.3)
        lines = [line for line in rendered(screen.table).splitlines()
                 if "gen_ai.client.token" in line]
        assert all("research-agent " in line for line in lines)  # whole, with room
