"""Keys as k9s, lazygit and otel-tui users expect them: lists that open at their newest row
and announce new rows, and tree keys in the trace."""

from __future__ import annotations

from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.span_tree import SpanTree
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import NOW, agent_trace, hex_span, hex_trace, traces_request, write
from tests.tui.test_app import app_for, open_trace, open_traces


async def test_a_new_filter_opens_the_list_at_its_newest_row(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(120, 20)) as pilot:
        table = await open_traces(pilot)
        screen = app.screen
        await pilot.press("pagedown", "pagedown")
        assert table.cursor_row > 10 and table.scroll_offset.y > 0
        screen.set_query("errors")
        screen.changed()
        # Until the rows arrive the list says so, never "none yet".
        assert "Traces loading…" in rendered(screen.query_one("#traces-info"))
        await refreshed(pilot)
        assert table.cursor_row == 0 and table.scroll_offset.y == 0
        assert table.row_count == 5
        await pilot.press("pagedown")
        screen.set_query("")
        screen.changed()
        assert "none yet" not in rendered(screen.query_one("#traces-info"))
        await refreshed(pilot)
        assert table.cursor_row == 0 and table.row_count == 25


async def test_new_rows_announce_themselves_when_not_following(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        screen = app.screen
        table.move_cursor(row=3)
        selected = table.selected_key()
        write(demo_db, ("traces", traces_request(agent_trace(110, NOW - 4 * 10**9))),
              ("traces", traces_request(agent_trace(111, NOW - 3 * 10**9))))
        await refreshed(pilot)
        assert table.selected_key() == selected
        assert "↑ 2 newer (g)" in rendered(screen.query_one("#traces-info"))
        await pilot.press("g")
        assert table.cursor_row == 0 and table.selected_key() == hex_trace("run-111")
        assert "newer" not in rendered(screen.query_one("#traces-info"))


async def test_tree_keys_collapse_expand_parent_and_all(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, hex_trace("run-1"))
        tree = screen.query_one(SpanTree)
        tree.focus()
        root = tree._by_key[hex_span("run-1", "invoke_agent support")]
        chat = tree._by_key[hex_span("run-1", "chat gpt-4o")]
        tree.move_cursor(root)
        assert root.is_expanded
        await pilot.press("left")  # open: collapses
        assert not root.is_expanded and tree.cursor_node is root
        await pilot.press("l")  # closed: opens
        assert root.is_expanded
        await pilot.press("right")  # open: to its first child
        assert tree.cursor_node.parent is root
        tree.move_cursor(chat)
        await pilot.press("h")  # a leaf: to its parent
        assert tree.cursor_node is root
        tree.move_cursor(chat)
        await pilot.press("p")
        assert tree.cursor_node is root
        tree.move_cursor(chat)
        await pilot.press("z")  # all closed, the cursor on the top span it was under
        assert not root.is_expanded and tree.cursor_node is root
        await pilot.press("Z")
        assert root.is_expanded and all(
            node.is_expanded for node in tree._by_key.values() if node.children)


async def test_y_copies_the_selected_value_with_a_toast(demo_db, monkeypatch):
    app = app_for(demo_db)
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        await pilot.press("y")
        assert copied == [table.selected_key()]
        await wait_for(pilot, lambda: any("copied trace id" in str(n.message)
                                          for n in app._notifications), what="the toast")
        screen = await open_trace(pilot, hex_trace("run-2"))
        await wait_for(pilot, lambda: screen.detail_span_id is not None, what="a span")
        await pilot.press("y")
        assert copied[-1] == screen.detail_span_id
        await pilot.press("escape", "6")
        await refreshed(pilot)
        await pilot.press("y")
        assert copied[-1] == app.screen.table.selected_item().body


async def test_2_always_shows_the_trace_list(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_trace(pilot, hex_trace("run-3"))
        await pilot.press("1", "2")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="the list")


async def test_a_greeting_says_where_demo_traffic_goes(demo_db):
    from agenttop.tui.app import make_app
    from tests.tui.fixtures import frozen_clock

    app = make_app(demo_db, refresh_s=60, clock=frozen_clock,
                   greeting="demo traffic goes to ~/x/demo.db, not your default database")
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert [n.message for n in app._notifications] == [
            "demo traffic goes to ~/x/demo.db, not your default database"]


async def test_j_and_k_scroll_the_span_detail_and_help_lists_them(demo_db):
    from tests.tui.test_app import select_span

    app = app_for(demo_db)
    async with app.run_test(size=(120, 24)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        await select_span(pilot, screen, hex_span("run-0", "chat gpt-4o"))
        pane = screen.query_one("#detail-pane")
        pane.focus()
        await pilot.pause()
        assert pane.max_scroll_y > 2
        await pilot.press("j", "j", "j")
        await pilot.pause()
        assert pane.scroll_y == 3
        await pilot.press("k")
        await pilot.pause()
        assert pane.scroll_y == 2
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = str(app.screen.query_one("#help-text").render())
        assert "Scroll down" in help_text and "Jump to trace id" in help_text


async def test_the_service_column_shows_long_names_whole_when_there_is_room(tmp_path):
    from agenttop.tui.app import make_app
    from agenttop.tui.widgets.trace_table import TraceTable
    from tests.tui.fixtures import SERVER, frozen_clock, span

    db = tmp_path / "wide.db"
    long_name = "rc2-pydantic-ai-v2-http"
    write(db, ("traces", traces_request([(long_name, [span(
        "wide", "invoke_agent research", key="root", base_ns=NOW - 10**9, duration_ms=20,
        kind=SERVER)])])))
    for size, whole in (((200, 40), True), ((120, 36), False)):
        app = make_app(db, refresh_s=60, clock=frozen_clock)
        async with app.run_test(size=size) as pilot:
            table = await open_traces(pilot)
            listed = rendered(table)
            assert (long_name in listed) is whole, listed.splitlines()[1]
            # The root name keeps its room first: the service grows only past it.
            assert isinstance(table, TraceTable)
            if whole:
                assert "invoke_agent research" in listed
                assert table.columns["root"].width >= TraceTable.FLEX_KEEP
            else:
                assert table.columns["service"].width == 13


async def test_a_narrow_header_keeps_the_firing_count(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await refreshed(pilot)
        header = screen_text(app).splitlines()[0]
        assert "● 1 firing" in header and "LIVE" in header, header
