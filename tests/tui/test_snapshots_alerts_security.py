"""Screenshots of the alerts and security screens over the demo database (frozen clock).

Update after an intended change with ``pytest tests/tui --snapshot-update`` and look at
the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

from agenttop.tui.app import make_app
from agenttop.tui.screens.alerts import AlertsScreen
from agenttop.tui.screens.security import SecurityScreen
from tests.tui.conftest import SIZE, refreshed, wait_for
from tests.tui.fixtures import frozen_clock


def app_for(db):
    return make_app(db, refresh_s=3600, clock=frozen_clock)


def test_alerts(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AlertsScreen))
        await refreshed(pilot)

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)


def test_security(snap_compare, demo_db):
    async def loaded(pilot):
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SecurityScreen))
        await refreshed(pilot)
        await pilot.press("down")  # a finding's detail under the list

    assert snap_compare(app_for(demo_db), terminal_size=SIZE, run_before=loaded)
