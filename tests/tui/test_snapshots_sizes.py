"""Every screen at 80x24 and at 200x60 over the demo database (frozen clock): nothing cut
that matters on a small terminal, nothing stretched oddly on a big one.

Update after an intended change with ``pytest tests/tui --snapshot-update`` and look at
the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

import pytest

from agenttop.tui.app import make_app
from agenttop.tui.screens.agents import AgentsScreen
from agenttop.tui.screens.alerts import AlertsScreen
from agenttop.tui.screens.conversations import ConversationsScreen
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.help import HelpScreen
from agenttop.tui.screens.logs import LogsScreen
from agenttop.tui.screens.metrics import MetricsScreen
from agenttop.tui.screens.scorecard import ScorecardScreen, ScorecardView
from agenttop.tui.screens.security import SecurityScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable
from tests.tui.conftest import refreshed, rendered, wait_for
from tests.tui.fixtures import frozen_clock, hex_span, hex_trace

SIZES = {"80x24": (80, 24), "200x60": (200, 60)}
LIVE = {"dashboard": ("1", DashboardScreen), "traces": ("2", TracesScreen),
        "alerts": ("3", AlertsScreen), "security": ("4", SecurityScreen),
        "metrics": ("5", MetricsScreen), "logs": ("6", LogsScreen),
        "conversations": ("7", ConversationsScreen), "agents": ("8", AgentsScreen)}


async def open_live(pilot, name: str) -> None:
    key, cls = LIVE[name]
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, cls), what=name)
    await refreshed(pilot)


async def open_trace(pilot) -> None:
    trace = "run-10"  # a tool timeout, and an e-mail address in the prompt
    await open_live(pilot, "traces")
    table = pilot.app.screen.query_one(TraceTable)
    table.move_cursor(row=table.keys.index(hex_trace(trace)))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TraceScreen), what="trace")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loaded, what="its spans")
    tree = screen.query_one(SpanTree)
    target = hex_span(trace, "execute_tool lookup_order")
    tree.move_cursor(tree._by_key[target])
    await wait_for(pilot, lambda: screen.detail_span_id == target, what="the span's detail")


async def open_help(pilot) -> None:
    await refreshed(pilot)
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="help")


async def open_scorecard(pilot) -> None:
    await refreshed(pilot)
    await pilot.press("r")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ScorecardScreen),
                   what="the scorecard")
    view = pilot.app.screen.query_one(ScorecardView)
    await wait_for(pilot, lambda: "Reading the database" not in rendered(view),
                   what="the scorecard's figures")


OPEN = {**{name: (lambda pilot, name=name: open_live(pilot, name)) for name in LIVE},
        "trace": open_trace, "help": open_help, "scorecard": open_scorecard}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", OPEN)
def test_every_screen_at_small_and_big_sizes(snap_compare, demo_db, screen, size):
    app = make_app(demo_db, refresh_s=3600, clock=frozen_clock)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=OPEN[screen])
