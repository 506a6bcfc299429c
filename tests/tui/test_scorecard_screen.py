"""The readiness scorecard in the TUI: ``r`` or the palette opens it over any screen."""

from __future__ import annotations

from textual.command import CommandPalette

from agenttop.tui.app import make_app
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.scorecard import ScorecardScreen, ScorecardView
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import frozen_clock, span, traces_request, write


def app_for(db):
    return make_app(db, refresh_s=60.0, clock=frozen_clock)


async def _opened(pilot) -> str:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ScorecardScreen), what="scorecard")
    view = app.screen.query_one(ScorecardView)
    await wait_for(pilot, lambda: "Reading the database" not in rendered(view),
                   what="the scorecard")
    return rendered(view)


async def test_r_opens_the_scorecard_of_the_file_and_escape_closes_it(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("r")
        text = await _opened(pilot)
        assert "Production Readiness: support-agent, billing-agent" in text
        assert "Input validation implemented" in text and "❌ fail" in text
        assert "prompt-injection phrases reached instrumented" in text
        assert "Ready for production? ❌ No" in text
        # The end of a long card is reachable by scrolling.
        await pilot.press("end")
        assert "Ready for production?" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="closed")


async def test_the_palette_offers_the_scorecard(demo_db):
    app = app_for(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        app.action_command_palette()
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"readiness")
        await pilot.pause(0.3)
        await pilot.press("enter")
        assert "Production Readiness" in await _opened(pilot)


async def test_service_names_show_as_written_without_control_characters(tmp_path):
    db = tmp_path / "agenttop.db"
    write(db, ("traces", traces_request([("[bold red]x[/]\x1b[2J", [span("t", "root")])])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        text = await _opened(pilot)
        assert "Production Readiness: [bold red]x[/]\\x1b[2J" in text
        assert "\x1b" not in screen_text(app)


async def test_without_a_file_it_says_so_instead_of_failing(tmp_path):
    app = app_for(tmp_path / "missing.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        text = await _opened(pilot)
        assert "Cannot read the scorecard: waiting for data at" in text
