"""Keys as k9s, lazygit and otel-tui users expect them: lists that open at their newest row
and announce new rows, and tree keys in the trace."""

from __future__ import annotations

from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.cards import LayerCard
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable
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
        help_text = rendered(app.screen.query_one("#help-text"))
        assert "Scroll down" in help_text and "Jump to trace id" in help_text
        for words in ("Search", "Next match", "Previous match", "Zoom", "Unzoom"):
            assert words in help_text, words


async def test_help_descriptions_wrap_under_their_own_column(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        lines = rendered(app.screen.query_one("#help-text")).splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("b "))
        # "Bell on/off — Ring the terminal bell when an alert fires or resolves" is wider
        # than the box: its second line starts under the description, not under the key.
        assert "Bell on/off" in lines[at] and "resolves" not in lines[at]
        assert lines[at + 1][:15].strip() == "" and "resolves" in lines[at + 1]


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
        # Each card's alert name whole: the state's word gives way on a narrow card.
        auth = rendered(app.screen.query_one("#card-auth", LayerCard).query_one(".state"))
        assert auth.strip() == "✖ auth-failures"
        await pilot.resize_terminal(160, 40)
        await pilot.pause(0.2)
        auth = rendered(app.screen.query_one("#card-auth", LayerCard).query_one(".state"))
        assert auth.strip() == "✖ CRITICAL  alert: auth-failures"


def header_x(table, column: str) -> int:
    """Where ``column``'s header starts on screen, in the table's cells."""
    x = 0
    for key, col in table.columns.items():
        if key.value == column:
            return x + 1
        x += col.get_render_width(table)
    raise AssertionError(column)


async def test_every_list_column_sorts_by_key_and_by_header(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_traces(pilot)
        screen = app.screen
        newest = table.keys
        assert table.sort_column is None  # newest first, as read
        await pilot.press("s")  # the first column: start, newest first
        assert table.sort_column == "start" and table.descending
        assert "Start▼" in rendered(table).splitlines()[0]
        await pilot.press("S")
        starts = [table.items[k].start_ns for k in table.keys]
        assert starts == sorted(starts)
        info = rendered(screen.query_one("#traces-info"))
        assert "sorted by start ▲" in info and "among" not in info  # every row is read
        # A click on a header sorts by it, biggest first; again, the other way.
        await pilot.click(TraceTable, offset=(header_x(table, "duration"), 0))
        durations = [table.items[k].duration_ns for k in table.keys]
        assert table.sort_column == "duration" and durations == sorted(durations, reverse=True)
        assert "Duration▼" in rendered(table).splitlines()[0]
        await pilot.click(TraceTable, offset=(header_x(table, "duration"), 0))
        assert not table.descending
        # A text column sorts A to Z first, by its text (the root span's name).
        await pilot.click(TraceTable, offset=(header_x(table, "root"), 0))
        roots = [table.items[k].root_name or "" for k in table.keys]
        assert table.sort_column == "root" and table.descending is False
        assert roots[-1] == "" or roots == sorted(roots)
        # New rows arriving keep the order; s past the last column: newest first again.
        await refreshed(pilot)
        assert table.sort_column == "root"
        while table.sort_column is not None:
            await pilot.press("s")
        assert table.keys == newest
        assert "sorted" not in rendered(screen.query_one("#traces-info"))


async def test_a_trace_filter_matching_nothing_names_what_exists(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(200, 30)) as pilot:
        await open_traces(pilot)
        screen = app.screen
        screen.set_query("agent:nobody service:zzz model:gpt-4o")
        screen.changed()
        await refreshed(pilot)
        info = " ".join(rendered(screen.query_one("#traces-info")).split())
        assert "no agent 'nobody' (agents: support)" in info
        assert "no service matching 'zzz' (services: auth-gateway, billing-agent, " \
               "support-agent)" in info
        assert "model" not in info.replace("filter: agent:nobody service:zzz model:gpt-4o", "")
        screen.set_query("agent:support")  # a name that exists: no hint
        screen.changed()
        await refreshed(pilot)
        assert "no agent" not in rendered(screen.query_one("#traces-info"))


async def test_the_mouse_chooses_windows_rows_and_footer_keys(demo_db):
    from textual.widgets._footer import FooterKey

    from agenttop.tui.screens.trace import TraceScreen

    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        dashboard = app.screen
        head = rendered(dashboard.query_one("#dash-head"))
        await pilot.click("#dash-head", offset=(head.index("15m") + 1, 0))
        assert dashboard.window_s == 900
        assert "[15m]" in rendered(dashboard.query_one("#dash-head"))
        # The footer's keys: "2 Traces".
        key = next(k for k in app.screen.query(FooterKey) if k.key == "2")
        await pilot.click(key)
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="traces")
        await refreshed(pilot)
        table = app.screen.query_one(TraceTable)
        # A row: a click selects it, a click on the selected row opens it.
        await pilot.click(TraceTable, offset=(5, 4))  # the header, then rows 0, 1, 2
        assert table.cursor_row == 3
        await pilot.click(TraceTable, offset=(5, 4))
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen), what="the trace")
        assert app.screen.trace_id == table.keys[3]


async def test_the_footer_is_rebuilt_only_when_its_keys_change(demo_db):
    from textual.widgets._footer import FooterKey

    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        before = set(app.screen.query(FooterKey))
        assert before
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="traces")
        await refreshed(pilot)
        await pilot.press("1")
        await refreshed(pilot)
        await pilot.pause(0.1)
        assert set(app.screen.query(FooterKey)) == before  # the same keys: the same widgets
        # Other keys (the trace list's) do rebuild it.
        screen = await open_trace(pilot, hex_trace("run-0"))
        keys = {k.key for k in screen.query(FooterKey)}
        assert "slash" in keys and "escape" in keys
