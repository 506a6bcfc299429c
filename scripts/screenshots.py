"""Save an SVG of every agenttop screen over the fixed demo database.

    python scripts/screenshots.py [--out screenshots]

The database is built through the real decode + writer path (``tests/tui/fixtures.py``)
and the app runs with a frozen clock in UTC at 120x36, so the SVGs are the same on every
run. One file per mode in the app's ``SCREENS`` (``dashboard.svg``, ``traces.svg``, ...)
plus ``trace.svg`` (a trace with a failed tool span selected) and ``transcript.svg`` (a
conversation, turn by turn).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["TZ"] = "UTC"
time.tzset()

from agenttop.tui.app import SCREENS, make_app  # noqa: E402
from agenttop.tui.screens.conversations import TranscriptScreen  # noqa: E402
from agenttop.tui.screens.trace import TraceScreen  # noqa: E402
from tests.tui.fixtures import (  # noqa: E402
    agent_fleet,
    build_demo_db,
    frozen_clock,
    hex_span,
    hex_trace,
)

SIZE = (120, 36)
TRACE = "run-10"  # a tool timeout, and an e-mail address in the prompt
CONVERSATION = "s-2"  # its turns include that trace


async def _settle(app, pilot, done=lambda: True) -> None:
    for _ in range(500):
        if app._reading is None and done():
            break
        await pilot.pause(0.02)
    target = app.refresh_count + 1
    app.request_refresh()
    for _ in range(500):
        if app.refresh_count >= target:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)


async def shoot(db: Path, out: Path) -> list[Path]:
    saved: list[Path] = []
    app = make_app(db, refresh_s=3600, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        for _key, mode, _cls, _title in SCREENS:
            await app.switch_mode(mode)
            await _settle(app, pilot)
            saved.append(Path(app.save_screenshot(f"{mode}.svg", str(out))))
        await app.switch_mode("traces")
        app.open_trace(hex_trace(TRACE), span_id=hex_span(TRACE, "execute_tool lookup_order"))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        await _settle(app, pilot, lambda: screen.loaded)
        for _ in range(500):
            if screen.detail_span_id is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        saved.append(Path(app.save_screenshot("trace.svg", str(out))))
        await app.switch_mode("conversations")
        transcript = TranscriptScreen(CONVERSATION)
        await app.push_screen(transcript)
        await _settle(app, pilot, lambda: bool(transcript.turns))
        saved.append(Path(app.save_screenshot("transcript.svg", str(out))))
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots",
                        help="directory for the SVGs (default: screenshots/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A relative database path: the title bar shows "agenttop · agenttop.db".
        cwd = Path.cwd()
        os.chdir(tmp)
        try:
            db = Path("agenttop.db")
            build_demo_db(db)
            agent_fleet(db)
            out = args.out if args.out.is_absolute() else cwd / args.out
            saved = asyncio.run(shoot(db, out))
        finally:
            os.chdir(cwd)
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
