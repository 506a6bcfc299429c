"""Screenshots of the metrics and logs screens over the demo database, frozen clock.

Update after an intended change with ``pytest tests/tui --snapshot-update`` and look at
the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

from agenttop.tui.app import make_app
from agenttop.tui.screens.logs import LogsScreen, LogTable
from agenttop.tui.screens.metrics import MetricsScreen
from tests.tui.conftest import SIZE, refreshed, wait_for
from tests.tui.fixtures import frozen_clock


def app_for(db):
    return make_app(db, refresh_s=3600, clock=frozen_clock)


def test_metrics(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MetricsScreen))
        await refreshed(pilot)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)


def test_logs_with_a_genai_message_selected(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("6")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogsScreen))
        await refreshed(pilot)
        table = pilot.app.screen.query_one(LogTable)
        table.move_cursor(row=2)  # the newest gen_ai.choice
        await pilot.pause()

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)
