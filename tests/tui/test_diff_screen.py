"""Trace diff in the trace list: ``m`` marks a trace, ``d`` compares the selected one with
it (the traces of tests/test_diff.py)."""

from __future__ import annotations

from agenttop.tui.screens.diff import DiffScreen
from agenttop.tui.screens.traces import TracesScreen
from tests.test_diff import build
from tests.tui.conftest import SIZE, screen_text, wait_for
from tests.tui.fixtures import hex_trace
from tests.tui.test_alerts_security import app_for, open_screen


async def test_mark_a_trace_and_compare_another_with_it_in_the_trace_list(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "2", TracesScreen)
        table = screen.table
        await wait_for(pilot, lambda: table.row_count == 2, what="both traces")
        await pilot.press("d")  # nothing marked yet: said, nothing opens
        assert isinstance(app.screen, TracesScreen)
        table.move_cursor(row=table.keys.index(hex_trace("before")))
        await pilot.press("m")
        assert screen.marked == hex_trace("before")
        assert "marked" in screen_text(app)
        table.move_cursor(row=table.keys.index(hex_trace("after")))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
        diff = app.screen
        await wait_for(pilot, lambda: bool(diff.text), what="the comparison")
        text = screen_text(app)
        for line in ("+   chat gpt-4o  [only in B: 80 ms, failed]",
                     "=   chat gpt-4o  600 ms → 1.40 s (+800 ms)",
                     "│ + Your order is delayed.",
                     "+   execute_tool refund_order  [only in B: 50 ms]"):
            assert line in text, line
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="back")
