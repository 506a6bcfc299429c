"""The TUI driven by Pilot over databases written through the real decode + writer path."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual.widgets import Input

from agenttop.tui.app import make_app
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.help import HelpScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.cards import LayerCard
from agenttop.tui.widgets.span_detail import SpanDetailView
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import (
    CLIENT,
    NOW,
    SERVER,
    agent_trace,
    frozen_clock,
    hex_span,
    hex_trace,
    span,
    traces_request,
    write,
)


def app_for(db: Path, refresh_s: float = 60.0):
    # A long interval: tests refresh explicitly, so what they see is what they wrote.
    return make_app(db, refresh_s=refresh_s, clock=frozen_clock)


async def open_traces(pilot) -> TraceTable:
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TracesScreen), what="traces")
    await refreshed(pilot)
    return pilot.app.screen.query_one(TraceTable)


async def open_trace(pilot, trace_id: str) -> TraceScreen:
    table = await open_traces(pilot)
    table.move_cursor(row=table.keys.index(trace_id))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TraceScreen), what="trace")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loaded, what="the trace's spans")
    return screen


async def select_span(pilot, screen: TraceScreen, span_id: str) -> str:
    tree = screen.query_one(SpanTree)
    tree.move_cursor(tree._by_key[span_id])
    await wait_for(pilot, lambda: screen.detail_span_id == span_id, what="span detail")
    await pilot.pause()
    return rendered(screen.query_one(SpanDetailView))


async def test_dashboard_traces_trace_detail_and_back(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert isinstance(app.screen, DashboardScreen)
        auth = app.screen.query_one("#card-auth", LayerCard)
        assert auth.has_class("critical")  # the fixture's firing auth-failures alert
        text = screen_text(app)
        for word in ("PROMPT", "TOOL", "MEMORY", "RUNTIME", "AUTH", "auth-failures",
                     "FIRING ALERTS (1)", "agenttop.db"):
            assert word in text

        trace = hex_trace("run-0")  # its question carries an e-mail address
        screen = await open_trace(pilot, trace)
        detail = await select_span(pilot, screen, hex_span("run-0", "chat gpt-4o"))
        assert "gen_ai.request.model" in detail and "gpt-4o" in detail
        assert "user:" in detail and "[EMAIL]" in detail and "jane.doe" not in detail
        assert "Findings (1)" in detail and "pii email" in detail
        assert "completion for order 1000" in detail  # the linked log record

        await pilot.press("tab")
        assert screen.query_one("#detail-pane").has_focus
        await pilot.press("tab")
        assert screen.query_one(SpanTree).has_focus
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="back")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dash")


async def test_filter_narrows_the_list(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        assert table.row_count == 25
        screen = app.screen

        async def filter_by(text: str, typed: bool = False) -> int:
            box = screen.query_one("#filter", Input)
            if not box.has_focus:
                await pilot.press("slash")
            box.value = ""
            if typed:
                await pilot.press(*text)
            else:
                box.value = text
            await refreshed(pilot)
            return table.row_count

        assert await filter_by("layer:other", typed=True) == 8
        assert await filter_by("errors") == 5
        assert await filter_by("billing") == 1
        assert table.keys == [hex_trace("orphaned")]
        assert await filter_by("errors layer:auth") == 5
        assert await filter_by("layer:nope") == 0
        assert "no layer 'nope'" in rendered(screen.query_one("#traces-info"))
        await pilot.press("escape", "escape")  # leave the box, then clear the filter
        await refreshed(pilot)
        assert table.row_count == 25


async def test_pause_freezes_the_list_until_resumed(demo_db):
    app = app_for(demo_db, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        before = table.row_count
        await pilot.press("space")
        assert app.paused and "PAUSED" in app.sub_title
        assert "PAUSED" in rendered(app.screen.query_one("#traces-info"))
        write(demo_db, ("traces", traces_request(agent_trace(100, NOW - 5 * 10**9))))
        count = app.status_count
        await wait_for(pilot, lambda: app.status_count >= count + 3, what="status reads")
        assert table.row_count == before
        await pilot.press("space")
        await wait_for(pilot, lambda: table.row_count == before + 1, what="the new trace")
        assert table.keys[0] == hex_trace("run-100")


async def test_follow_keeps_the_newest_row_until_the_user_moves(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        table.move_cursor(row=3)
        selected = table.selected_key()
        write(demo_db, ("traces", traces_request(agent_trace(101, NOW - 4 * 10**9))))
        await refreshed(pilot)
        assert table.selected_key() == selected  # not following: the cursor keeps its trace
        await pilot.press("f")
        write(demo_db, ("traces", traces_request(agent_trace(102, NOW - 3 * 10**9))))
        await refreshed(pilot)
        assert table.cursor_row == 0 and table.selected_key() == hex_trace("run-102")
        await pilot.press("j")
        assert not app.screen.follow


async def test_help_lists_every_binding(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = rendered(app.screen.query_one("#help-text"))
        for description in ("Dashboard", "Traces", "Pause", "Help", "Quit", "Window",
                            "Filter", "Follow", "Open trace", "Back", "Next pane",
                            "command palette", "Conversations", "Open transcript",
                            "Agents", "Its traces", "Sort", "Reverse"):
            assert description in text, description
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="closed")


async def test_orphans_wait_under_a_placeholder_and_are_adopted(tmp_path):
    db = tmp_path / "agenttop.db"
    t = "late-root"
    children = [
        span(t, "chat gpt-4o", parent="root", start_ms=10, duration_ms=500, kind=CLIENT,
             attributes={"gen_ai.operation.name": "chat"}),
        span(t, "execute_tool search", parent="chat gpt-4o", start_ms=100, duration_ms=50,
             attributes={"gen_ai.operation.name": "execute_tool"}),
    ]
    write(db, ("traces", traces_request([("agent", children)])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, hex_trace(t))
        tree = screen.query_one(SpanTree)
        placeholder = f"missing:{hex_span(t, 'root')}"
        assert placeholder in tree._by_key
        chat = tree._by_key[hex_span(t, "chat gpt-4o")]
        assert chat.parent is tree._by_key[placeholder]
        assert "parent missing" in rendered(tree)
        await select_span(pilot, screen, hex_span(t, "execute_tool search"))

        root = span(t, "invoke_agent", key="root", start_ms=0, duration_ms=600, kind=SERVER)
        write(db, ("traces", traces_request([("agent", [root])])))
        await refreshed(pilot)
        assert placeholder not in tree._by_key
        chat = tree._by_key[hex_span(t, "chat gpt-4o")]
        assert chat.parent is tree._by_key[hex_span(t, "root")]
        assert "parent missing" not in rendered(tree)
        assert "invoke_agent" in rendered(screen.query_one("#trace-head"))
        await pilot.pause()
        assert tree.cursor_node.data == hex_span(t, "execute_tool search")  # kept its place


async def test_parent_cycles_do_not_hang(tmp_path):
    db = tmp_path / "agenttop.db"
    t = "cyclic"
    spans = [
        span(t, "root", start_ms=0, duration_ms=100, kind=SERVER),
        span(t, "self", parent="self", start_ms=1, duration_ms=5),
        span(t, "a", parent="b", start_ms=2, duration_ms=5),
        span(t, "b", parent="a", start_ms=3, duration_ms=5),
    ]
    write(db, ("traces", traces_request([("agent", spans)])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, hex_trace(t))
        tree = screen.query_one(SpanTree)
        assert "parent cycle" in rendered(tree)
        for name in ("root", "self", "a", "b"):
            assert hex_span(t, name) in tree._by_key
        await pilot.press("j", "j", "j", "j", "enter", "enter")  # walk and toggle: no hang


async def test_waits_for_a_missing_database_then_shows_it(tmp_path):
    db = tmp_path / "later.db"
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert not banner.has_class("-hidden")
        assert f"waiting for data at {db}" in rendered(banner)
        db.touch()  # serve has created the file but not the schema yet
        await refreshed(pilot)
        assert "waiting for data" in rendered(banner)
        write(db, ("traces", traces_request(agent_trace(0, NOW - 60 * 10**9))))
        await refreshed(pilot)
        assert banner.has_class("-hidden")
        assert "spans 1 " in rendered(app.screen.query_one("#card-prompt .figures"))


async def test_a_foreign_file_is_one_line_of_error(tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("these are not the spans you are looking for\n")
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert banner.has_class("-error")
        assert "not an agenttop database" in rendered(banner)
        await pilot.press("2")
        await refreshed(pilot)
        assert app.is_running


async def test_a_failing_query_is_reported_not_fatal(demo_db, monkeypatch):
    import agenttop.tui.screens.traces as traces_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        original = traces_module.list_traces
        monkeypatch.setattr(traces_module, "list_traces", broken)
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert "refresh failed: disk on fire" in rendered(banner)
        assert table.row_count == 25  # the last good data stays
        monkeypatch.setattr(traces_module, "list_traces", original)
        await refreshed(pilot)
        assert banner.has_class("-hidden")


async def test_health_check_banner(demo_db):
    problem: list[str | None] = [None]
    app = make_app(demo_db, refresh_s=60, clock=frozen_clock, health_check=lambda: problem[0])
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert banner.has_class("-hidden")
        problem[0] = "agenttop serve exited with code 1; its log: agenttop.db.log"
        await refreshed(pilot)
        assert "serve exited" in rendered(banner) and banner.has_class("-error")
        problem[0] = None
        await refreshed(pilot)
        assert banner.has_class("-hidden")


async def test_a_10000_span_trace_opens_without_freezing(tmp_path):
    db = tmp_path / "agenttop.db"
    t = "huge"
    spans = [span(t, "invoke_agent batch", key="root", start_ms=0, duration_ms=60_000,
                  kind=SERVER)]
    for step in range(20):
        spans.append(span(t, f"step {step}", key=f"s{step}", parent="root",
                          start_ms=step * 3000, duration_ms=2900))
        for leaf in range(499 if step else 498):
            spans.append(span(t, f"execute_tool fetch {leaf}", key=f"s{step}-{leaf}",
                              parent=f"s{step}", start_ms=step * 3000 + leaf * 5,
                              duration_ms=4,
                              attributes={"gen_ai.operation.name": "execute_tool"}))
    assert len(spans) == 10_000
    write(db, ("traces", traces_request([("batch-agent", spans)])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        started = time.monotonic()
        screen = await open_trace(pilot, hex_trace(t))
        tree = screen.query_one(SpanTree)
        assert len(tree.model) == 10_000
        assert len(tree._by_key) < 2_000  # built lazily: only what can be seen
        await pilot.press("j")
        assert tree.cursor_line == 1  # the screen answered the key
        assert time.monotonic() - started < 20
        # A step's children come in chunks, the rest behind a "more" line.
        step = tree._by_key[hex_span(t, "s19")]
        if not step.is_expanded:
            step.expand()
            await pilot.pause()
        assert "more (enter to load)" in str(step.children[-1].label)
        tree.select_node(step.children[-1])
        await wait_for(pilot, lambda: len(step.children) > 300, what="the next chunk")
        await pilot.pause()
        assert tree.cursor_node.data == hex_span(t, "s19-200")  # the first of the new chunk


async def test_the_list_is_a_window_that_grows_as_the_cursor_nears_its_end(tmp_path):
    db = tmp_path / "agenttop.db"
    spans = [span(f"many-{i}", f"job {i}", start_ms=-i * 100, kind=SERVER) for i in range(250)]
    write(db, ("traces", traces_request([("batch", spans)])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        assert table.row_count == 200  # one page, not the whole table
        assert "1–200 of 250" in rendered(app.screen.query_one("#traces-info"))
        table.move_cursor(row=190)
        await wait_for(pilot, lambda: table.row_count == 250, what="the next page")
        assert table.keys[0] == hex_trace("many-0") and table.keys[-1] == hex_trace("many-249")
        assert table.selected_key() == hex_trace("many-190")


async def test_a_trace_from_a_skewed_clock_is_not_pinned_on_top(tmp_path):
    db = tmp_path / "agenttop.db"
    year_2200 = 7_258_118_400 * 10**9
    write(db, ("traces", traces_request([
        ("agent", [span("now", "invoke_agent now", kind=SERVER)]),
        ("agent", [span("later", "invoke_agent later", kind=SERVER, start_ms=-60_000)]),
        ("skewed", [span("2200", "invoke_agent from 2200", kind=SERVER, base_ns=year_2200)]),
    ])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        assert table.keys == [hex_trace("now"), hex_trace("later")]  # newest real one first
        text = screen_text(app)
        assert "1 dated ahead of now (skewed clocks): /skewed" in text
        await pilot.press("slash", *"skewed", "enter")
        await refreshed(pilot)
        assert table.keys == [hex_trace("2200")]
        assert "2200-01-01" in rendered(table)  # another day shows its date


def test_another_day_shows_its_date():
    from agenttop.tui import fmt

    day = 86_400 * 10**9
    assert fmt.clock(NOW, today_ns=NOW) == fmt.clock(NOW)
    assert fmt.clock(NOW - 2 * day, today_ns=NOW).count(":") == 1  # "Jun 13 15:06"
    assert fmt.clock(NOW + 200 * 365 * day, today_ns=NOW)[:4].isdigit()


async def test_keys_are_answered_while_a_slow_read_runs(demo_db, monkeypatch):
    """A screen whose read is slow says it is loading; the header's status keeps being
    read, and switching screens shows the other screen's fresh data at once."""
    from agenttop.tui.screens import metrics

    gate = threading.Event()
    real = metrics.read_metrics

    def slow(*args, **kwargs):
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "read_metrics", slow)
    app = app_for(demo_db, refresh_s=0.05)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await refreshed(pilot)
            await pilot.press("5")
            await wait_for(pilot, lambda: "loading" in app.sub_title, what="loading")
            statuses = app.status_count
            await wait_for(pilot, lambda: app.status_count >= statuses + 3, what="statuses")
            reads = app.refresh_count
            await pilot.press("1")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                           and app.refresh_count > reads, what="the dashboard's read")
            assert not gate.is_set() and "loading" not in app.sub_title
            gate.set()
            await pilot.press("5")
            await wait_for(pilot, lambda: "requests_total" in screen_text(app),
                           what="the metrics")
    finally:
        gate.set()


async def test_an_idle_file_is_not_read_again(demo_db):
    """With nothing new in the file, the status is read every interval and the screen's
    data is not; new data is read at the next interval."""
    app = app_for(demo_db, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        # Settled: the data on screen was read at the version the status last saw (a read
        # that started before the first status knew no version is read once more).
        await wait_for(pilot, lambda: app._reading is None and app.screen.read_at is not None
                       and app.screen.read_at[0] == app._version, what="settled")
        reads, statuses = app.refresh_count, app.status_count
        await wait_for(pilot, lambda: app.status_count >= statuses + 5, what="statuses")
        assert app.refresh_count == reads
        write(demo_db, ("traces", traces_request(agent_trace(102, NOW - 3 * 10**9))))
        await wait_for(pilot, lambda: app.refresh_count > reads, what="a read of new data")
