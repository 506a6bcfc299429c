"""Screenshots of the three screens over the demo database with a frozen clock.

Update after an intended change with ``pytest tests/tui --snapshot-update`` and look at
the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

from agenttop.tui.app import make_app
from agenttop.tui.screens.agents import AgentsScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable
from tests.tui.conftest import SIZE, refreshed, wait_for
from tests.tui.fixtures import frozen_clock, hex_span, hex_trace


def app_for(db):
    return make_app(db, refresh_s=3600, clock=frozen_clock)


def test_dashboard(snap_compare, demo_db):
    async def loaded(pilot):
        await refreshed(pilot)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)


def test_traces(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TracesScreen))
        await refreshed(pilot)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)


def test_trace_with_a_failed_tool_span_selected(snap_compare, demo_db):
    trace = "run-10"  # a tool timeout, and an e-mail address in the prompt

    async def loaded(pilot):
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TracesScreen))
        await refreshed(pilot)
        table = pilot.app.screen.query_one(TraceTable)
        table.move_cursor(row=table.keys.index(hex_trace(trace)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TraceScreen))
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.loaded)
        tree = screen.query_one(SpanTree)
        target = hex_span(trace, "execute_tool lookup_order")
        tree.move_cursor(tree._by_key[target])
        await wait_for(pilot, lambda: screen.detail_span_id == target)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)


def test_agents(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("8")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AgentsScreen))
        await refreshed(pilot)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)
