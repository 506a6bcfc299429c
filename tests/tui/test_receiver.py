"""The UI and the receiver: its state on every screen (running, stopped, not responding,
none yet) with a toast when it goes and comes back, reads that survive it dying or a lock
on the file, refused calls, forwarding, and the serve child of ``agenttop run``.

Receivers are real: ``BackgroundService`` in-process, or ``agenttop serve`` as a process
killed with SIGKILL; spans and refused calls go through the OpenTelemetry SDK exporter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import grpc
import psutil
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from agenttop.launcher import exit_reason
from agenttop.otlp import audit
from agenttop.serve import BackgroundService
from agenttop.store.audit import record_refused
from agenttop.store.status import STALE_AFTER_S, ReceiverStatus, write_heartbeat
from agenttop.tui.app import make_app
from agenttop.tui.receiver import (
    REFUSAL_KINDS,
    change_notice,
    forwarding,
    receiver_view,
    refused_summary,
)
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.security import RefusedTable, SecurityScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.receiver_line import ReceiverLine
from agenttop.tui.widgets.trace_table import TraceTable
from tests.conftest import serve_settings
from tests.test_process import free_port, start_serve, wait_listening
from tests.test_run_e2e import Terminal
from tests.test_security import refusal, sdk_export
from tests.tui.conftest import SIZE, refreshed, rendered, screen_text, wait_for
from tests.tui.fixtures import NOW, frozen_clock, through_writer

S = 10**9
HOSTILE = "[/] [bold]x\x1b[2J\x1b]0;pwned\x07"


def toasts(app) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


async def open_screen(pilot, key: str, cls):
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, cls), what=cls.__name__)
    await refreshed(pilot)
    return pilot.app.screen


# --- the words, headless ----------------------------------------------------------------------

def test_one_phrase_per_state():
    beat = ReceiverStatus(pid=7, started_ns=NOW - 60 * S, heartbeat_ns=NOW - S, stopped_ns=None,
                          status={"receiver": {"grpc": "127.0.0.1:4317"}})
    running = receiver_view(beat, NOW)
    assert (running.state, running.headline, running.problem) == (
        "running", "receiving on 127.0.0.1:4317", "")
    gone = receiver_view(beat, NOW + int(STALE_AFTER_S * S))
    assert gone.state == "gone"
    assert gone.problem == "receiver not responding since 15:06:29 (no heartbeat for 8s)"
    # agenttop run knows its child died before the heartbeat goes stale: the same words.
    killed = receiver_view(beat, NOW, "agenttop serve killed by SIGKILL; its log: a.db.log")
    assert killed.problem == ("receiver not responding since 15:06:29: agenttop serve killed "
                              "by SIGKILL; its log: a.db.log")
    stopped = ReceiverStatus(7, NOW - 60 * S, NOW, NOW, {})
    assert receiver_view(stopped, NOW).headline == "receiver stopped at 15:06:30"
    assert receiver_view(stopped, NOW).problem == ""
    assert receiver_view(stopped, NOW, "agenttop serve exited with code 0").problem == (
        "receiver stopped at 15:06:30: agenttop serve exited with code 0")
    none = receiver_view(None, NOW)
    assert (none.state, none.headline, none.problem) == ("none", "no receiver yet", "")

    assert change_notice(None, running) is None  # the first view is no news
    assert change_notice(running, gone) == ("Receiver not responding", gone.problem, "error")
    assert change_notice(gone, running) == ("Receiver is back", running.headline, "information")
    assert change_notice(none, running)[0] == "Receiver started"
    assert change_notice(running, receiver_view(stopped, NOW))[0] == "Receiver stopped"
    assert change_notice(none, receiver_view(stopped, NOW)) is None


def test_refusals_and_forwarding_in_words():
    assert set(REFUSAL_KINDS) == {audit.MISSING_TOKEN, audit.WRONG_TOKEN, audit.MALFORMED,
                                  audit.TOO_LARGE, audit.SLOW}
    assert refused_summary({audit.WRONG_TOKEN: 2, audit.MISSING_TOKEN: 1,
                            audit.MALFORMED: 1}) == "3 unauthenticated, 1 malformed"
    assert refused_summary({}) == "none"
    assert refused_summary({"too large": 1200}) == "1,200 too large"  # a reason added later
    ok = {"forward": {"url": "grpc://collector:4317", "state": "ok", "queued": 0, "sent": 9,
                      "failed": 0, "dropped": 0, "last_error": None, "last_error_ns": None}}
    assert forwarding(ok) == ("→ grpc://collector:4317 ok, 0 queued", False)
    retrying = {"forward": {**ok["forward"], "state": "retrying", "queued": 1204, "dropped": 12,
                            "last_error": "UNAVAILABLE: connection refused"}}
    assert forwarding(retrying) == ("→ grpc://collector:4317 retrying: UNAVAILABLE: connection "
                                    "refused, 1,204 queued, 12 dropped", True)
    assert forwarding({}) is None
    odd = {"forward": {"url": "x\x1by", "state": 3, "queued": float("nan"), "dropped": "many"}}
    assert forwarding(odd) == ("→ x\\x1by 3, 0 queued", False)
    assert forwarding({"forward": "not a dict"}) is None


def test_exit_reason_of_a_child():
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    done.wait(30)
    assert exit_reason(done) == "exited with code 3"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert exit_reason(sleeper) is None
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait(30)
    assert exit_reason(sleeper) == "killed by SIGKILL"


# --- a real receiver -------------------------------------------------------------------------

async def test_running_on_every_screen_then_stopped_with_a_toast(db_path):
    background = BackgroundService(serve_settings(db_path))
    service = background.__enter__()
    stopped = False
    try:
        app = make_app(db_path, refresh_s=60)
        async with app.run_test(size=SIZE) as pilot:
            await refreshed(pilot)
            line = rendered(app.screen.query_one(ReceiverLine))
            assert f"receiving on {service.grpc_address} (no token)" in line
            assert "refused   none in 5m" in line
            for key in "123456":
                await pilot.press(key)
                await refreshed(pilot)
                header = screen_text(app).splitlines()[0]
                assert f"on {service.grpc_address} · db" in header, f"not on screen {key}"
                assert "agenttop · …" in header  # the long path gave way, not the status
            await pilot.pause(0.3)  # the rate needs two reads a quarter second apart
            await refreshed(pilot)
            assert f"receiving 0.0 spans/s on {service.grpc_address}" in app.sub_title
            await pilot.press("1")
            await asyncio.to_thread(background.__exit__, None, None, None)
            stopped = True
            await refreshed(pilot)
            assert "receiver stopped at" in app.sub_title
            assert app.screen.query_one(Banner).has_class("-hidden")  # stopped is no error
            assert any(title == "Receiver stopped" for title, _ in toasts(app))
            assert "receiver  stopped at" in rendered(app.screen.query_one(ReceiverLine))
    finally:
        if not stopped:
            background.__exit__(None, None, None)


async def test_stale_heartbeat_is_not_responding_and_a_new_receiver_is_back(db_path):
    first = BackgroundService(serve_settings(db_path))
    first.__enter__()
    app = make_app(db_path, refresh_s=60)  # refreshes only when asked
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert app.receiver.state == "running"
        # As if it had been killed: its last heartbeat, long ago, and no word of stopping.
        await asyncio.to_thread(first.__exit__, None, None, None)
        old = time.time_ns() - 30 * S
        await asyncio.to_thread(through_writer, db_path, lambda conn: write_heartbeat(
            conn, started_ns=old - 60 * S, now_ns=old, status={}))
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert banner.has_class("-error")
        assert "receiver not responding since" in rendered(banner)
        assert "receiver not responding since" in app.sub_title
        assert ("Receiver not responding", app.receiver.problem) in toasts(app)

        second = BackgroundService(serve_settings(db_path))
        service = await asyncio.to_thread(second.__enter__)
        try:
            await refreshed(pilot)
            assert ("Receiver is back", f"receiving on {service.grpc_address}") in toasts(app)
            assert banner.has_class("-hidden")
        finally:
            await asyncio.to_thread(second.__exit__, None, None, None)


async def test_waits_for_serve_to_create_the_file_and_survives_its_kill_9(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short path: the banner shows it whole
    db, port = Path("later.db"), free_port()
    skew = [0]  # the UI's clock runs ahead of the receiver's by this much
    app = make_app(db, refresh_s=60, clock=lambda: time.time_ns() + skew[0])
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        banner = app.screen.query_one(Banner)
        assert (f"waiting for data at {db}: no receiver has written to it yet"
                in rendered(banner))
        assert "no receiver yet" in app.sub_title

        http = f"127.0.0.1:{free_port()}"
        proc = start_serve(db, port, "--http", http)
        try:
            await asyncio.to_thread(wait_listening, proc, port)
            exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
            result = await asyncio.to_thread(sdk_export, exporter, "before-the-kill")
            assert result == SpanExportResult.SUCCESS
            await refreshed(pilot)
            assert banner.has_class("-hidden")
            assert f"on 127.0.0.1:{port}" in app.sub_title
            assert f"(no token) · http {http}" in rendered(app.screen.query_one(ReceiverLine))
            assert any(title == "Receiver started" for title, _ in toasts(app))

            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 30)
            skew[0] = int((STALE_AFTER_S + 1) * S)  # instead of waiting for it to go stale
            await refreshed(pilot)
            assert "receiver not responding since" in rendered(banner)
            assert any(title == "Receiver not responding" for title, _ in toasts(app))
            screen = await open_screen(pilot, "2", TracesScreen)  # reads go on
            assert screen.query_one(TraceTable).row_count == 1
            assert "receiver not responding since" in rendered(screen.query_one(Banner))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            proc.stdout.close()
            proc.stderr.close()

        skew[0] = 0
        again = start_serve(db, port, "--http", f"127.0.0.1:{free_port()}")
        try:
            await asyncio.to_thread(wait_listening, again, port)
            await refreshed(pilot)
            assert any(title == "Receiver is back" for title, _ in toasts(app))
            assert app.screen.query_one(Banner).has_class("-hidden")
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(30)
            again.stdout.close()
            again.stderr.close()


async def test_a_locked_file_is_said_and_nothing_freezes(demo_db):
    app = make_app(demo_db, refresh_s=60, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        figures = rendered(app.screen.query_one("#card-prompt .figures"))
        app.source.close()  # its idle connection would keep the lock from being taken
        locker = apsw.Connection(str(demo_db))
        try:
            locker.execute("PRAGMA locking_mode = EXCLUSIVE")
            locker.execute("BEGIN EXCLUSIVE")
            locker.execute("CREATE TABLE lock_holder (x)")
            await refreshed(pilot)
            banner = app.screen.query_one(Banner)
            assert "agenttop.db is locked by another program" in rendered(banner)
            assert rendered(app.screen.query_one("#card-prompt .figures")) == figures
            await pilot.press("2")  # keys still work while every read fails
            await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen), what="traces")
            await refreshed(pilot)
            assert "is locked by another program" in rendered(app.screen.query_one(Banner))
        finally:
            locker.close()  # rolls back and lets go
        await refreshed(pilot)
        assert app.screen.query_one(Banner).has_class("-hidden")
        assert app.screen.query_one(TraceTable).row_count == 25


# --- refused calls and forwarding --------------------------------------------------------------

async def test_refused_calls_from_a_client_without_the_token(db_path):
    settings = serve_settings(db_path, token="s3cret-t0ken")
    with BackgroundService(settings) as service:
        endpoint = f"127.0.0.1:{service.grpc_port}"
        for name in ("no-token-1", "no-token-2"):
            exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
            assert sdk_export(exporter, name) == SpanExportResult.FAILURE
        wrong = OTLPSpanExporter(endpoint=endpoint, insecure=True,
                                 headers={"authorization": "Bearer nope"})
        assert sdk_export(wrong, "wrong-token") == SpanExportResult.FAILURE
        garbage = refusal(service.grpc_port, b"\xff\xff\xff",
                          (("authorization", "Bearer s3cret-t0ken"),))
        assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT

        app = make_app(db_path, refresh_s=60)
        async with app.run_test(size=SIZE) as pilot:
            line = ""

            async def counted() -> bool:
                nonlocal line
                await refreshed(pilot)  # refusals are written about once a second
                line = rendered(app.screen.query_one(ReceiverLine))
                return "3 unauthenticated, 1 malformed" in line

            deadline = time.monotonic() + 20
            while not await counted():
                assert time.monotonic() < deadline, line
            assert "(token required)" in line and "refused   3 unauthenticated, 1 malformed in 5m" \
                in line
            screen = await open_screen(pilot, "4", SecurityScreen)
            table = screen.query_one(RefusedTable)
            listed = rendered(table)
            for reason in (audit.MISSING_TOKEN, audit.WRONG_TOKEN, audit.MALFORMED):
                assert reason in listed
            assert "ipv4:127.0.0.1" in listed and "traces" in listed
            text = screen_text(app)
            assert "Refused calls  3 unauthenticated, 1 malformed in the last 15m" in text
            assert "s3cret-t0ken" not in text and "nope" not in text


async def test_forwarding_http_and_peers_render_literally(tmp_path):
    db = tmp_path / "agenttop.db"
    status = {
        "receiver": {"grpc": "127.0.0.1:4317", "security": "no token"},
        "http": {"address": "127.0.0.1:4318"},
        "forward": {"url": f"grpc://c{HOSTILE}:4317", "state": "retrying", "queued": 1204,
                    "sent": 5, "failed": 3, "dropped": 12, "last_error": f"boom{HOSTILE}",
                    "last_error_ns": NOW},
    }

    def setup(conn: apsw.Connection) -> None:
        write_heartbeat(conn, started_ns=NOW - 60 * S, now_ns=NOW, status=status)
        record_refused(conn, [(NOW - 5 * S, f"ipv4:{HOSTILE}", "traces", audit.WRONG_TOKEN, 7)])

    through_writer(db, setup)
    app = make_app(db, refresh_s=60, clock=frozen_clock)
    async with app.run_test(size=(200, 36)) as pilot:
        await refreshed(pilot)
        assert isinstance(app.screen, DashboardScreen)
        line = rendered(app.screen.query_one(ReceiverLine))
        assert "receiving on 127.0.0.1:4317 (no token) · http 127.0.0.1:4318" in line
        escaped = "[/] [bold]x\\x1b[2J\\x1b]0;pwned\\x07"
        assert (f"→ grpc://c{escaped}:4317 retrying: boom{escaped}, 1,204 queued, 12 dropped"
                in line)
        assert "refused   7 unauthenticated in 5m" in line
        assert "\x1b" not in app.export_screenshot()

        screen = await open_screen(pilot, "4", SecurityScreen)
        assert f"ipv4:{escaped}" in rendered(screen.query_one(RefusedTable))
        assert "\x1b" not in app.export_screenshot()


async def test_run_child_exit_is_said_like_any_other_receiver_exit(db_path):
    with BackgroundService(serve_settings(db_path)):
        exited: list[str | None] = [None]
        app = make_app(db_path, refresh_s=60, health_check=lambda: exited[0])
        async with app.run_test(size=SIZE) as pilot:
            await refreshed(pilot)
            assert app.receiver.state == "running"
            exited[0] = "agenttop serve killed by SIGKILL; its log: agenttop.db.log"
            await refreshed(pilot)  # the heartbeat is fresh, the child's exit is known
            banner = rendered(app.screen.query_one(Banner))
            assert "receiver not responding since" in banner
            assert ": agenttop serve killed by SIGKILL; its log: agenttop.db.log" in banner
            assert any(title == "Receiver not responding" for title, _ in toasts(app))


@pytest.mark.timeout(180)
def test_agenttop_run_says_when_its_receiver_is_killed(tmp_path):
    db, port = tmp_path / "r.db", free_port()
    term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--db", str(db),
                     "--grpc", f"127.0.0.1:{port}", "--http", "off"])
    try:
        term.wait_for(f"on 127.0.0.1:{port}", timeout=60)
        serve = [p for p in psutil.Process(term.proc.pid).children(recursive=True)
                 if "serve" in p.cmdline()]
        assert len(serve) == 1
        serve[0].kill()
        term.wait_for("receiver not responding since", timeout=30)
        term.wait_for("killed by SIGKILL; its log: ", timeout=30)  # the toast
        term.send("q")
        term.wait_exit(60)
    finally:
        if term.proc.poll() is None:
            os.killpg(term.proc.pid, signal.SIGKILL)
        os.close(term.master)
    assert term.proc.returncode == 0


async def test_pending_alerts_and_clock_skew_show_on_the_dashboard(tmp_path):
    db = tmp_path / "agenttop.db"
    status = {
        "receiver": {"grpc": "127.0.0.1:4317", "security": "no token", "skewed": 3},
        "alerts": {"pending": [{"key": f"tool-error-rate{HOSTILE}", "since_ns": NOW - 40 * S,
                                "for_s": 60, "message": "tool failure_rate 3% > 2% over 5m"}]},
    }
    through_writer(db, lambda conn: write_heartbeat(conn, started_ns=NOW - 60 * S, now_ns=NOW,
                                                    status=status))
    app = make_app(db, refresh_s=60, clock=frozen_clock)
    async with app.run_test(size=(200, 36)) as pilot:
        await refreshed(pilot)
        panel = app.screen.query_one("#alerts")
        assert panel.border_title == "FIRING ALERTS (0) · PENDING (1)"
        text = rendered(panel)
        assert "◐ tool-error-rate[/] [bold]x" in text
        assert "pending 40s of 1m  tool failure_rate 3% > 2% over 5m" in text
        assert "\x1b" not in app.export_screenshot()
        line = rendered(app.screen.query_one(ReceiverLine))
        assert "skew      3 spans or logs dated more than 5m ahead of their arrival" in line
