"""The dashboard's ingest card shows the file size against the receiver's size limit, and
how long it keeps data, as the running receiver reports them in its heartbeat row."""

from __future__ import annotations

from agenttop.serve import BackgroundService
from agenttop.tui.app import make_app
from agenttop.tui.widgets.cards import retention_lines
from tests.conftest import serve_settings
from tests.tui.conftest import SIZE, refreshed, rendered


async def test_the_ingest_card_shows_the_limit_and_the_retention(db_path):
    settings = serve_settings(db_path, retention_s=3 * 86400, max_db_mb=50)
    with BackgroundService(settings):
        app = make_app(db_path, refresh_s=60)
        async with app.run_test(size=SIZE) as pilot:
            await refreshed(pilot)
            card = rendered(app.screen.query_one("#card-summary .figures"))
    lines = [line.rstrip() for line in card.splitlines()]
    assert lines[1].startswith("database  ") and lines[1].endswith(" / 50.0 MB")
    assert lines[2] == "keep      3d"


def test_retention_lines_say_what_the_status_says():
    assert retention_lines(42_100_000, {}) == ("42.1 MB", None)  # no receiver has said
    status = {"retention_s": 7 * 86400, "max_db_bytes": 100_000_000, "pruned_traces": 1204,
              "last_prune_ns": 1}
    assert retention_lines(42_100_000, status) == ("42.1 MB / 100 MB", "7d · 1,204 pruned")
    off = {"retention_s": None, "max_db_bytes": None, "pruned_traces": 0}
    assert retention_lines(None, off) == ("–", "everything")
    # A file anyone may have written: values of the wrong type count as absent.
    hostile = {"retention_s": "7d", "max_db_bytes": [1], "pruned_traces": float("nan")}
    assert retention_lines(5, hostile) == ("5 B", "everything")
