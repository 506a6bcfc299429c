"""TUI test helpers: a frozen time zone, fixture databases, and waiting on the app."""

from __future__ import annotations

import asyncio
import html
import inspect
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from agenttop.tui.app import AgentTopApp
from tests.tui.fixtures import build_demo_db

# Times on screen are local: pin the zone so that output is the same on every machine.
os.environ["TZ"] = "UTC"
time.tzset()

SIZE = (120, 36)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (no async plugin needed for Pilot)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "agenttop.db"
    build_demo_db(path)
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo database, as the relative path ``agenttop.db`` (titles are stable)."""
    monkeypatch.chdir(tmp_path)
    target = Path("agenttop.db")
    target.write_bytes(demo_template.read_bytes())
    return target


async def wait_for(pilot: Pilot, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def refreshed(pilot: Pilot) -> None:
    """Refresh now and wait until a refresh that started after this call is applied."""
    app = pilot.app
    assert isinstance(app, AgentTopApp)
    busy = app._reading is not None
    target = app.refresh_count + (2 if busy else 1)
    app.request_refresh()
    await wait_for(pilot, lambda: app.refresh_count >= target, what="a refresh")
    await pilot.pause()


def rendered(widget: Widget) -> str:
    """The text a widget renders, all of it (not only the visible part), line by line."""
    height = max(widget.virtual_size.height, widget.size.height)
    strips = widget.render_lines(Region(0, 0, widget.size.width, height))
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def screen_text(app: AgentTopApp) -> str:
    """The visible screen as text, from the SVG screenshot (as a user would see it)."""
    svg = app.export_screenshot()
    lines: dict[str, list[str]] = {}
    for y, text in re.findall(r'<text [^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        lines.setdefault(y, []).append(html.unescape(text).replace("\xa0", " "))
    return "\n".join("".join(parts) for _, parts in sorted(lines.items(),
                                                            key=lambda kv: float(kv[0])))
