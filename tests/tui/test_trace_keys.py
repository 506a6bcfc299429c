"""The trace screen as otel-tui and lazygit users expect it: search the spans of a trace
(``/``, ``n``, ``N``), zoom the waterfall (``+``, ``-``), bars that scale at 80 columns,
and a span detail that lays itself out again when the terminal is resized."""

from __future__ import annotations

from agenttop.tui.widgets.span_detail import SpanDetailView, break_key
from agenttop.tui.widgets.span_tree import CHUNK, SpanTree
from tests.tui.conftest import rendered, wait_for
from tests.tui.fixtures import hex_span, hex_trace, span, traces_request, write
from tests.tui.test_app import app_for, open_trace, select_span


async def test_slash_searches_spans_by_name_and_attribute_and_n_cycles(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        tree = screen.query_one(SpanTree)
        chat = hex_span("run-0", "chat gpt-4o")
        tool = hex_span("run-0", "execute_tool lookup_order")
        await pilot.press("slash", *"LOOKUP")
        await wait_for(pilot, lambda: screen.matches, what="search results")
        assert screen.matches == [tool] and tree.cursor_node is tree._by_key[tool]
        line = rendered(screen.query_one("#search-line"))
        assert "1 of 1 match " in line and "n next" in line
        await pilot.press("enter")
        assert tree.has_focus and screen.query_one("#span-search").has_class("-hidden")
        screen.query_one("#span-search").value = "gpt-4o"
        await wait_for(pilot, lambda: screen.search_text == "gpt-4o", what="a second search")
        assert screen.matches == [chat]  # its name and its model attribute
        screen.query_one("#span-search").value = "support"
        await wait_for(pilot, lambda: screen.search_text == "support", what="a third search")
        assert len(screen.matches) == 5  # the agent's name, the service of four spans
        tree.move_cursor(tree._by_key[hex_span("run-0", "invoke_agent support")])
        await pilot.pause()
        assert screen.matches[0] == tree.cursor_node.data
        await pilot.press("n")
        assert tree.cursor_node.data == screen.matches[1]
        await pilot.press("N", "N")  # before the first: wraps to the last
        assert tree.cursor_node.data == screen.matches[-1]
        await pilot.press("n")  # after the last: wraps to the first
        assert tree.cursor_node.data == screen.matches[0]
        # Matching names are marked in the tree.
        assert tree.matches == set(screen.matches)
        await pilot.press("escape")  # clears the search, stays on the trace
        assert screen.search_text == "" and not tree.matches
        assert screen.query_one("#search-line").has_class("-hidden")
        assert app.screen is screen
        await pilot.press("slash", *"no-such-thing")
        await wait_for(pilot, lambda: screen.search_text == "no-such-thing", what="search")
        assert "no span matches" in rendered(screen.query_one("#search-line"))
        await pilot.press("escape", "escape")  # the box, then the trace
        assert app.screen is not screen


async def test_search_opens_the_lines_above_a_match_not_loaded_yet(tmp_path):
    db = tmp_path / "wide.db"
    kids = CHUNK * 2 + 50
    spans = [span("wide", "root", duration_ms=1000)]
    spans += [span("wide", f"step {i}", parent="root", start_ms=i, key=f"s{i}")
              for i in range(kids)]
    spans.append(span("wide", "needle call", parent=f"s{kids - 1}", start_ms=kids,
                      attributes={"tool.name": "haystack"}))
    write(db, ("traces", traces_request([("wide-agent", spans)])))
    app = app_for(db)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_trace(pilot, hex_trace("wide"))
        tree = screen.query_one(SpanTree)
        needle = hex_span("wide", "needle call")
        assert needle not in tree._by_key  # under the third chunk of the root's children
        await pilot.press("slash", *"haystack", "enter")
        await wait_for(pilot, lambda: screen.matches, what="search results")
        await wait_for(pilot, lambda: screen.detail_span_id == needle, what="the match")
        assert tree.cursor_node is tree._by_key[needle]


async def test_plus_zooms_the_waterfall_to_the_selected_span_and_minus_goes_back(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        tree = screen.query_one(SpanTree)
        chat = hex_span("run-0", "chat gpt-4o")
        auth = hex_span("run-0", "POST /oauth/token")
        await select_span(pilot, screen, chat)
        whole = rendered(screen.query_one("#ruler"))
        assert whole.rstrip().endswith("1.80s")
        await pilot.press("plus")
        ruler = rendered(screen.query_one("#ruler"))
        assert "+170ms" in ruler and ruler.rstrip().endswith("870ms")
        bar_cells = len(tree._label(chat, 0).plain) - len(tree._label(chat, 0).plain.rstrip("█"))
        assert bar_cells == tree._geometry(0)[1]  # the zoomed span fills the scale
        assert tree._label(auth, 1).plain.rstrip().endswith("◂")  # ended before it
        await pilot.press("minus")
        assert rendered(screen.query_one("#ruler")) == whole and tree.zoom is None


async def test_the_waterfall_scales_at_80_columns(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        tree = screen.query_one(SpanTree)
        await pilot.pause()
        width = tree.scrollable_content_region.width
        assert rendered(screen.query_one("#ruler")).rstrip().endswith("1.80s")
        lines = [line for line in rendered(tree).splitlines() if line.strip()]
        assert len(lines) == 6 and all("█" in line for line in lines)
        assert all(len(line.rstrip()) <= width for line in lines)
        root, chat = (tree._label(hex_span("run-0", name), depth).plain.count("█")
                      for name, depth in (("invoke_agent support", 0), ("chat gpt-4o", 1)))
        assert chat < root  # 700 ms of a 1.80 s trace


def test_long_keys_break_at_their_separators():
    assert break_key("gen_ai.conversation.id", 17) == "gen_ai.\nconversation.id"
    assert break_key("http.response.status_code", 12) == "http.\nresponse.\nstatus_code"
    assert break_key("short", 8) == "short"
    assert break_key("abcdefghijklmnopqrst", 8) == "abcdefgh\nijklmnop\nqrst"


async def test_the_span_detail_lays_itself_out_again_on_resize(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        text = await select_span(pilot, screen, hex_span("run-0", "POST /oauth/token"))
        assert "http.response.status_code 200" in " ".join(text.split())
        await pilot.resize_terminal(100, 40)
        await pilot.pause(0.2)
        detail = screen.query_one(SpanDetailView)
        narrow = [line.strip() for line in rendered(detail).splitlines()]
        # The key broken at its dots, never inside a word; the span was not read again.
        assert any(line.startswith("http.response. ") and "200" in line for line in narrow)
        assert "status_code" in narrow
        assert screen.detail_span_id == hex_span("run-0", "POST /oauth/token")


async def test_figures_in_the_detail_read_as_figures(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_trace(pilot, hex_trace("run-0"))
        text = " ".join((await select_span(pilot, screen, hex_span("run-0", "chat gpt-4o")))
                        .split())
        assert '"cost_usd": 0.0032' in text and "0.00319999" not in text
