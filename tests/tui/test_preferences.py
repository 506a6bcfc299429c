"""The user's settings file: theme, bell, window and a keymap by binding id, refused whole
with every problem and its line, and applied by the running UI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agenttop.cli import main
from agenttop.tui.app import binding_ids, make_app
from agenttop.tui.preferences import Preferences, PreferencesError, load_preferences
from agenttop.tui.screens.agents import AgentsScreen
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.help import HelpScreen
from tests.tui.conftest import SIZE, refreshed, rendered, wait_for
from tests.tui.fixtures import frozen_clock, hex_trace
from tests.tui.test_app import open_trace


def test_a_good_file_and_a_missing_one(tmp_path):
    path = tmp_path / "config.toml"
    assert load_preferences(path, binding_ids()) == Preferences(path=path)  # the defaults
    assert not Preferences().bell and Preferences().window_s == 300
    path.write_text('theme = "nord"\nbell = true\nwindow = "15m"\n\n[keys]\n'
                    '"trace.search" = "ctrl+f, /"\n')
    prefs = load_preferences(path, binding_ids())
    assert (prefs.theme, prefs.bell, prefs.window_s) == ("nord", True, 900)
    assert prefs.keymap == {"trace.search": "ctrl+f,/"}


def test_a_bad_file_names_every_problem_with_its_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('theme = "solarized-neon"\nbel = true\nwindow = "10m"\n[keys]\n'
                    '"trace.serch" = "ctrl+f"\n"agenttop.quit" = 3\n')
    with pytest.raises(PreferencesError) as e:
        load_preferences(path, binding_ids())
    lines = str(e.value).splitlines()
    assert lines[0].startswith(f"{path}:2: unknown setting 'bel' (settings: theme, bell, ")
    assert any(line.startswith(f"{path}:1: theme: no theme 'solarized-neon' (themes: ")
               and "nord" in line for line in lines)
    assert f"{path}:3: window: '10m' is not one of 1m, 5m, 15m" in lines
    assert any(line.startswith(f"{path}:5: keys: no binding 'trace.serch' (its screen's: ")
               and "trace.search" in line for line in lines)
    assert f'{path}:6: keys: agenttop.quit needs keys as text, e.g. "ctrl+f,/"' in lines
    path.write_text("theme = \n")
    with pytest.raises(PreferencesError, match=r"config\.toml:1: invalid TOML: .*\(column \d+\)"):
        load_preferences(path, binding_ids())


def test_the_ui_refuses_a_bad_settings_file_in_one_go(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('window = "2m"\n')
    result = CliRunner().invoke(main, ["ui", "--db", str(tmp_path / "a.db"),
                                       "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (f"agenttop: error: {path}:1: window: '2m' is not one of "
                             "1m, 5m, 15m\n")


async def test_the_running_ui_applies_the_settings(demo_db):
    prefs = Preferences(theme="nord", bell=True, window_s=900,
                        keymap={"trace.search": "ctrl+f", "agenttop.help": "f1"})
    app = make_app(demo_db, refresh_s=60.0, clock=frozen_clock, preferences=prefs)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert app.theme == "nord" and app.bell_on
        assert isinstance(app.screen, DashboardScreen) and app.screen.window_s == 900
        await pilot.press("8")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="agents")
        assert app.screen.window_s == 900
        screen = await open_trace(pilot, hex_trace("run-0"))
        await pilot.press("ctrl+f")  # the keymap's key for the search
        assert not screen.query_one("#span-search").has_class("-hidden")
        await pilot.press("escape", "f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = rendered(app.screen.query_one("#help-text"))
        assert "Settings ~/" in text or "Settings /" in text
        assert "trace.search" in text  # the ids a keymap names
