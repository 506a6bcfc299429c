"""Span names, attributes, services, log bodies and excerpts are shown literally.

Nothing a client sends is parsed as markup, and no control character reaches the
terminal: ESC and the other C0 controls are shown escaped (``\\x1b``).
"""

from __future__ import annotations

from agenttop.tui.app import make_app
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.text import clean, safe
from agenttop.tui.widgets.span_detail import SpanDetailView
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import (
    NOW,
    SERVER,
    frozen_clock,
    hex_span,
    hex_trace,
    log_record,
    logs_request,
    span,
    traces_request,
    write,
)

NAME = "[bold red]boom[/]"
EVIL = "\x1b[2J[/]cleared \x1b]0;pwned\x07 mail x@example.com"


def test_clean_escapes_controls_and_keeps_markup_characters():
    assert clean("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert clean("tab\there\nnext\x00\x7f\x9b") == "tab here↵next\\x00\\x7f\\x9b"
    assert clean("l\u202eevil") == "l\\u202eevil"
    assert clean("a\nb\tc", multiline=True) == "a\nb   c"
    text = safe(NAME)
    assert text.plain == NAME and not text.spans
    assert safe("x" * 50, width=10).plain == "x" * 9 + "…"


async def test_hostile_span_renders_literally_everywhere(tmp_path):
    db = tmp_path / "agenttop.db"
    t = "hostile"
    base = NOW - 30 * 10**9
    spans = [span(t, NAME, key="root", base_ns=base, duration_ms=50, kind=SERVER,
                  attributes={"evil": EVIL, "[k]\x1b]0;x\x07": "[/]", "gen_ai.input.messages":
                              '[{"role": "[b]user[/b]", "content": "\\u001b[31m[red]hi[/red]"}]'})]
    write(db, ("traces", traces_request([("[i]svc[/i]\x1b[5m", spans)])),
          ("logs", logs_request("svc", [log_record(t, "root", at_ns=base + 10**6,
                                                   body="[red]log[/red] \x1b[31mbody")])))
    app = make_app(db, refresh_s=60, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="traces")
        await refreshed(pilot)
        table = app.screen.query_one(TraceTable)
        listed = rendered(table)
        assert NAME in listed and "[i]svc[/i]" in listed
        assert "\x1b" not in listed

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen), what="trace")
        screen = app.screen
        await wait_for(pilot, lambda: screen.detail_span_id == hex_span(t, "root"),
                       what="detail")
        await pilot.pause()
        tree = rendered(screen.query_one(SpanTree))
        assert NAME in tree and "\x1b" not in tree
        detail = rendered(screen.query_one(SpanDetailView))
        assert NAME in detail
        assert "\\x1b[2J[/]cleared" in detail and "\\x1b]0;pwned\\x07" in detail
        assert "[k]\\x1b]0;x\\x07" in detail
        assert "[b]user[/b]:" in detail and "\\x1b[31m[red]hi[/red]" in detail
        assert "[red]log[/red] \\x1b[31mbody" in detail
        assert "pii email" in detail and "[EMAIL]" in detail  # the excerpt, escaped too
        assert "\x1b" not in detail and "\x07" not in detail

        shot = app.export_screenshot()
        assert "\x1b" not in shot and "\x07" not in shot
        assert NAME in screen_text(app)
        assert hex_trace(t).startswith(screen.trace_id[:8])
