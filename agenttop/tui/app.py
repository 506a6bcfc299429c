"""The agenttop TUI application: screens, key bindings, and the one refresh loop.

``make_app`` is the factory the CLI (``agenttop ui``, ``agenttop run``) and the tests
share. The app owns:

- the screens, one Textual *mode* each (``SCREENS``: key, mode name, class); adding a
  screen is one entry there;
- the refresh loop, in two parts that never wait for each other. Every ``refresh_s``
  seconds a status worker reads what the header and banner show (spans stored, alerts,
  the receiver's heartbeat, ``data_changes.version``, the file's size): a few index
  seeks. Then, only if the file changed or the minute did since the visible screen's data
  was read (see ``screens.base.LiveScreen``), a screen worker runs that screen's job and
  the result is applied in one ``batch_update``; idle, nothing else is read. A screen read
  never holds up the status nor another screen's read: switching screens starts the new
  screen's read at once (the old one's result is dropped), and a read taking longer than
  ``LOADING_AFTER_S`` says "loading" in the header while keys keep working;
- the status: title (the database path), subtitle (live/paused, ingest rate, file size,
  firing alerts, the receiver's state, loading) and the notice banner (waiting for the
  file, an unreadable or locked file, a failed read, the receiver gone). A change of the
  receiver's state is also a toast.

Times: every "now" comes from ``clock`` when one is given (tests, screenshots), so that
output is reproducible; otherwise from the wall clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import apsw
from rich.cells import cell_len
from textual import on, work
from textual.app import App, ScreenStackError, SystemCommand, UnknownModeError
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from agenttop.analysis.rules import Rule, load_rules
from agenttop.config import default_config_path, home_relative
from agenttop.store import StoreError
from agenttop.store.alerts import AlertEpisode, alert_changes
from agenttop.store.db import locked_message
from agenttop.store.queries import span_mark
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.status import ReceiverStatus, data_version, read_status
from agenttop.tui import fmt
from agenttop.tui.commands import AgentTopCommands
from agenttop.tui.preferences import Preferences
from agenttop.tui.receiver import ReceiverView, change_notice, receiver_view
from agenttop.tui.screens.agents import AgentsScreen, AgentTable
from agenttop.tui.screens.alerts import AlertsScreen, AlertTable
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.screens.conversations import ConversationsScreen, ConversationTable
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.help import HelpScreen, bindings_by_id
from agenttop.tui.screens.logs import LogsScreen, LogTable
from agenttop.tui.screens.metrics import MetricsScreen, MetricTable
from agenttop.tui.screens.scorecard import ScorecardScreen
from agenttop.tui.screens.security import FindingTable, SecurityScreen
from agenttop.tui.screens.trace import DetailPane, TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from agenttop.tui.source import NotReady, Source
from agenttop.tui.text import clean
from agenttop.tui.widgets.span_tree import SpanTree
from agenttop.tui.widgets.trace_table import TraceTable

log = logging.getLogger(__name__)

# A screen read taking longer than this says so in the header (keys keep working).
LOADING_AFTER_S = 0.5
HEADER_CHROME = 18  # cells of the header that are not its title: the icon and clock space

# (key, mode, screen class, title).
SCREENS: tuple[tuple[str, str, type[LiveScreen], str], ...] = (
    ("1", "dashboard", DashboardScreen, "Dashboard"),
    ("2", "traces", TracesScreen, "Traces"),
    ("3", "alerts", AlertsScreen, "Alerts"),
    ("4", "security", SecurityScreen, "Security"),
    ("5", "metrics", MetricsScreen, "Metrics"),
    ("6", "logs", LogsScreen, "Logs"),
    ("7", "conversations", ConversationsScreen, "Conversations"),
    ("8", "agents", AgentsScreen, "Agents"),
)


@dataclass
class Status:
    """What one status read found: cheap figures every screen shows, read apart from the
    screens' data so that a slow screen query never holds them up."""

    mark: int | None = None  # max(rowid) of spans
    alerts: tuple[int, list[AlertEpisode]] | None = None  # from alert_changes
    version: int | None = None  # data_changes.version: what changed, for the screen reads
    size: int | None = None
    notice: str = ""
    error: bool = False
    receiver: ReceiverStatus | None = None  # the heartbeat row
    receiver_read: bool = False  # whether ``receiver`` was read (None: there is none)
    exited: str | None = None  # from the health check: why serve is gone


@dataclass
class ScreenRead:
    """One screen job's result, for the screen and generation it was made for."""

    screen: LiveScreen | None
    generation: int
    read_at: tuple[int | None, int]  # (data version, minute) the job was made at
    data: Any = None
    ok: bool = False  # the job ran without error
    notice: str = ""  # why it failed


class StatusDone(Message):
    """Posted by the status worker; applied on the UI thread."""

    def __init__(self, status: Status) -> None:
        super().__init__()
        self.status = status


class ScreenDone(Message):
    """Posted by a screen worker; applied on the UI thread."""

    def __init__(self, read: ScreenRead) -> None:
        super().__init__()
        self.read = read


class AgentTopApp(App[None]):
    """``top`` for AI-agent systems, over one agenttop database file."""

    CSS_PATH = "agenttop.tcss"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {AgentTopCommands}
    MODES: ClassVar[dict[str, Any]] = {mode: cls for _, mode, cls, _ in SCREENS}
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"app.show_mode('{mode}')", title, id=f"agenttop.{mode}")
          for key, mode, _, title in SCREENS),
        Binding("space", "toggle_pause", "Pause", id="agenttop.pause",
                tooltip="Freeze the view; again to resume"),
        Binding("question_mark", "help", "Help", id="agenttop.help"),
        Binding("b", "toggle_bell", "Bell on/off", id="agenttop.bell",
                tooltip="Ring the terminal bell when an alert fires or resolves"),
        Binding("q", "quit", "Quit", id="agenttop.quit"),
        Binding("y", "copy", "Copy", id="agenttop.copy", show=False,
                tooltip="Copy the selected value (trace id, span id, message…) to the "
                        "clipboard"),
        # Not in the footer, which the keys above already fill at 120 columns.
        Binding("r", "scorecard", "Readiness scorecard", id="agenttop.scorecard", show=False,
                tooltip="The production-readiness scorecard, from this file"),
    ]

    paused: reactive[bool] = reactive(False)
    notice: reactive[tuple[str, str]] = reactive(("", "info"))  # (message, info | error)

    def __init__(
        self,
        db: Path,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], int] | None = None,
        rules: Sequence[Rule] | None = None,
        health_check: Callable[[], str | None] | None = None,
        preferences: Preferences | None = None,
        greeting: str | None = None,
    ) -> None:
        super().__init__()
        self.greeting = greeting
        self.preferences = preferences or Preferences()
        self.bell_on = self.preferences.bell
        if self.preferences.theme:
            self.theme = self.preferences.theme
        self.set_keymap(self.preferences.keymap)
        # Alert notifications: the newest alert id and the firing episodes (id -> key) as
        # of the last refresh; None until the first, whose alerts are not news.
        self._alert_mark: int | None = None
        self._firing: dict[int, str] = {}
        self.db = Path(db)
        self.source = Source(self.db)
        self.refresh_s = refresh_s
        self._clock = clock
        self.rules: list[Rule] = list(load_rules(None) if rules is None else rules)
        self._health_check = health_check
        self._receiver_status: ReceiverStatus | None = None  # as last read
        self.receiver: ReceiverView | None = None  # None until the first refresh
        self._status_busy = False  # a status read is under way
        # The screen read under way: (screen, generation), since when; one more wanted.
        self._reading: tuple[LiveScreen, int] | None = None
        self._reading_since = 0.0
        self._again = False
        self._version: int | None = None  # data_changes.version, as last read
        self._status = Status()  # as last read
        self._read_problem = ""  # why the visible screen's last read failed
        self._last_mark: tuple[int, int] | None = None  # (now_ns, mark)
        self.refresh_count = 0  # screen reads applied (tests wait on it)
        self.status_count = 0  # status reads applied
        self.ingest_rate: float | None = None  # spans stored per second
        self.db_size: int | None = None
        self.title = clean(f"agenttop · {home_relative(self.db)}")
        self.sub_title = "● LIVE"

    # --- time and status ----------------------------------------------------------------
    def now_ns(self) -> int:
        return self._clock() if self._clock is not None else time.time_ns()

    def _current_notice(self) -> tuple[str, str]:
        # A file that cannot be read explains the rest; then a screen's failed read; then
        # a receiver gone; then waiting.
        status = self._status
        if status.notice and status.error:
            return status.notice, "error"
        if self._read_problem:
            return self._read_problem, "error"
        if self.receiver is not None and self.receiver.problem:
            return self.receiver.problem, "error"
        return status.notice, "info"

    def _show_status(self) -> None:
        # Most telling first: a header too narrow for all of it cuts the file size, not
        # the firing count.
        parts = [f"● {len(self._firing)} firing"] if self._firing else []
        parts.append("⏸ PAUSED" if self.paused else "● LIVE")
        receiver = self.receiver
        if receiver is not None and receiver.state == "running":
            rate = ("" if self.ingest_rate is None else
                    " " + fmt.rate(self.ingest_rate).replace("/s", " spans/s"))
            on = f" on {receiver.address}" if receiver.address else ""
            parts.append(f"receiving{rate}{on}")
        elif receiver is not None:
            parts.append(receiver.headline)
        parts.append(f"db {fmt.size(self.db_size)}")
        loading = self.loading_s
        if loading is not None and loading >= LOADING_AFTER_S:
            parts.insert(-1, f"loading {loading:.0f}s…")
        self.sub_title = " · ".join(parts)

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header's line. The status outranks the path: when both do not fit, the
        middle of the path gives way first, then the path."""
        room = self.size.width - HEADER_CHROME - 3 - cell_len(sub_title)  # 3: " — "
        if cell_len(title) > room >= 16:
            head = 11  # "agenttop · "
            title = title[:head] + "…" + title[len(title) - (room - head - 1):]
        elif cell_len(title) > room:
            title = "agenttop"
        return super().format_title(title, sub_title)

    def on_resize(self) -> None:
        self.mutate_reactive(AgentTopApp.sub_title)  # the headers format the title again

    def watch_paused(self, paused: bool) -> None:
        self._show_status()
        if not paused:
            self.request_refresh()

    # --- the refresh loop ---------------------------------------------------------------
    def on_mount(self) -> None:
        if self.greeting:
            self.notify(self.greeting, timeout=8, markup=False)
        self._show_status()
        # Every refresh_s the status; the screen's data only if it says something changed
        # (``_status_done``, ``_stale``).
        self.set_interval(self.refresh_s, self._read_status, name="refresh")
        self.request_refresh()

    def on_unmount(self) -> None:
        self.source.close()

    def request_refresh(self) -> None:
        """Refresh now: the status, and the visible screen's data whether or not the file
        changed (what it shows did, or it was just shown). A read under way for the same
        screen and generation runs once more when it is done."""
        self._read_status()
        self._read_screen()

    def _visible(self) -> LiveScreen | None:
        """The screen on show if it is fed by the loop (None too while starting or
        closing, when there is no screen)."""
        if not self.is_running:
            return None
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):
            return None
        return screen if isinstance(screen, LiveScreen) else None

    def _read_status(self) -> None:
        if self._status_busy:
            return
        self._status_busy = True
        self._status_worker(self._alert_mark, list(self._firing))

    @work(thread=True, exit_on_error=False, group="status")
    def _status_worker(self, alert_mark: int | None, firing: list[int]) -> None:
        status = Status()
        if self._health_check is not None:
            try:
                status.exited = self._health_check()
            except Exception:  # the check is the caller's; its failure is not ours
                log.exception("health check failed")
        try:
            with self.source.connection() as conn:
                status.mark = span_mark(conn)
                status.alerts = alert_changes(conn, alert_mark, firing)
                status.receiver, status.receiver_read = read_status(conn), True
                status.version = data_version(conn)
        except NotReady as e:
            status.notice = str(e)
            status.receiver_read = True  # no file: no receiver has written one
        except apsw.BusyError:
            # Another program holds a lock on the file (rare in WAL mode): the next read
            # tries again; what was last read stays on screen meanwhile.
            status.notice, status.error = locked_message(self.source.path), True
        except StoreError as e:
            status.notice, status.error = str(e), True
        except Exception as e:  # a failed query must not take the UI down: say it, go on
            log.exception("status read failed")
            status.notice, status.error = f"refresh failed: {e}", True
        status.size = self.source.file_size()
        self.post_message(StatusDone(status))

    @on(StatusDone)
    def _status_done(self, message: StatusDone) -> None:
        status = message.status
        self._status_busy = False
        self.status_count += 1
        try:
            self._apply_status(status)
            screen = self._visible()
            if screen is not None:
                screen.tick(self.now_ns())
        except Exception:
            log.exception("applying the status failed")
            self.notice = ("could not show the latest status (see the log)", "error")
        reading = self._reading
        if self._stale() and (reading is None or reading[0] is not self._visible()):
            self._read_screen()

    def _stale(self) -> bool:
        """Whether the visible screen's data may differ from what it shows: the file
        changed since it was read, or the minute did (windows slide), or it never loaded
        (or, while paused, what it shows changed). Idle, nothing is read again."""
        screen = self._visible()
        if screen is None:
            return False
        if screen.dirty:
            return True
        if self.paused:
            return False
        return (self._version is None or screen.read_at is None
                or screen.read_at != (self._version, self.now_ns() // MINUTE_NS))

    def _read_screen(self) -> None:
        screen = self._visible()
        if screen is None:
            self.refresh_count += 1
            return
        if self._reading == (screen, screen.generation):
            self._again = True  # once more when this one is done
            return
        # A read under way for another screen or generation does not hold this one up: its
        # result is dropped (a thread cannot be stopped; its connection is its own).
        job: Job | None = None
        if screen.dirty or not self.paused:
            try:
                job = screen.collect()
            except Exception:  # a screen's bug must not stop the loop for the others
                log.exception("collect failed on %s", type(screen).__name__)
        if job is None:
            self.refresh_count += 1
            return
        self._reading = (screen, screen.generation)
        self._reading_since = time.monotonic()
        read_at = (self._version, self.now_ns() // MINUTE_NS)
        self._screen_worker(screen, job, screen.generation, read_at)

    @work(thread=True, exclusive=True, exit_on_error=False, group="screen")
    def _screen_worker(self, screen: LiveScreen, job: Job, generation: int,
                       read_at: tuple[int | None, int]) -> None:
        read = ScreenRead(screen, generation, read_at)
        try:
            with self.source.connection() as conn:
                read.data = job(conn)
                read.ok = True
        except NotReady:
            pass  # the status read says so
        except apsw.BusyError:
            read.notice = locked_message(self.source.path)
        except StoreError as e:
            read.notice = str(e)
        except Exception as e:  # a failed query must not take the UI down: say it, go on
            log.exception("refresh failed")
            read.notice = f"refresh failed: {e}"
        self.post_message(ScreenDone(read))

    @on(ScreenDone)
    def _screen_done(self, message: ScreenDone) -> None:
        read = message.read
        screen = read.screen
        mine = self._reading == (screen, read.generation)
        if mine:
            self._reading = None
        try:
            with self.batch_update():
                if mine:
                    self._read_problem = read.notice
                    self.notice = self._current_notice()
                if screen is not None and screen.is_attached:
                    if read.ok and read.generation == screen.generation:
                        screen.dirty = False
                        screen.read_at = read.read_at
                        screen.apply(read.data)
                    elif read.generation != screen.generation and mine:
                        self._again = True  # what the screen shows changed meanwhile
                self._show_status()
        except Exception:
            log.exception("applying a refresh failed")
            self.notice = ("could not show the latest data (see the log)", "error")
        finally:
            self.refresh_count += 1
            if self._again and self._reading is None:
                self._again = False
                self._read_screen()

    @property
    def loading_s(self) -> float | None:
        """How long the visible screen's read has been under way (None: none is)."""
        if self._reading is None or self._reading[0] is not self._visible():
            return None
        return time.monotonic() - self._reading_since

    def _apply_status(self, status: Status) -> None:
        now = self.now_ns()
        if status.mark is not None:
            last = self._last_mark
            if last is not None and now - last[0] >= SECOND_NS // 4:
                self.ingest_rate = max(0, status.mark - last[1]) * SECOND_NS / (now - last[0])
            if last is None or now - last[0] >= SECOND_NS // 4:
                self._last_mark = (now, status.mark)
        self.db_size = status.size
        if status.version is not None or status.notice:
            self._version = status.version
        if status.alerts is not None:
            self._alerts_changed(*status.alerts)
        self._status = status
        self._receiver_changed(status, now)
        self._show_status()
        self.notice = self._current_notice()

    def _receiver_changed(self, status: Status, now_ns: int) -> None:
        """Update the receiver's state; a toast when it went away or came back.

        When the file could not be read, the last heartbeat read is judged again: it goes
        stale like a receiver that stopped writing.
        """
        if status.receiver_read:
            self._receiver_status = status.receiver
        view = receiver_view(self._receiver_status, now_ns, status.exited)
        news = change_notice(self.receiver, view)
        if news is not None:
            title, message, severity = news
            self.notify(message, title=title, severity=severity,  # type: ignore[arg-type]
                        markup=False, timeout=8)
        self.receiver = view

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The workers catch their own errors; this is the net under them (a bug, say). A
        # cancelled worker is no failure: a thread worker runs to its end and reports.
        if event.state != WorkerState.ERROR:
            return
        log.error("%s worker failed: %r", event.worker.group, event.worker.error)
        self.notice = (f"refresh failed: {event.worker.error}", "error")
        if event.worker.group == "status":
            self._status_busy = False
        elif event.worker.group == "screen":
            self._reading = None
            self.refresh_count += 1

    def _alerts_changed(self, mark: int, rows: list[AlertEpisode]) -> None:
        """Notify alerts that fired or resolved since the last refresh (not at start)."""
        firing = {a.alert_id: str(a.key) for a in rows if a.state == "firing"}
        if self._alert_mark is not None:
            news: list[tuple[str, str, str]] = []  # (title, message, severity)
            old = self._alert_mark
            by_id = {a.alert_id: a for a in rows}
            for alert in rows:
                if alert.alert_id > old:
                    news.append((f"Alert firing: {clean(str(alert.key))}", alert.message,
                                 "error"))
            # A resolution says what resolved it: the value, not the title again.
            resolved = [(alert_id, key, by_id[alert_id].message if alert_id in by_id else "")
                        for alert_id, key in self._firing.items() if alert_id not in firing]
            resolved += [(a.alert_id, str(a.key), a.message) for a in rows
                         if a.alert_id > old and a.state == "resolved"]
            for _, key, message in resolved:
                # An episode's message is its firing message, then "; resolved: why".
                why = message.rpartition("resolved: ")[2] if "resolved: " in message else ""
                news.append((f"Alert resolved: {clean(key)}", why, "information"))
            for title, message, severity in news:
                # Markup off: keys and messages are the evaluator's, built from user rules
                # and series labels.
                self.notify(clean(message) or title, title=title, severity=severity,
                            markup=False, timeout=8)  # type: ignore[arg-type]
            if news and self.bell_on:
                self.bell()
        self._alert_mark = mark
        self._firing = firing

    # --- actions ------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notify("Bell on: alerts ring the terminal bell" if self.bell_on else
                    "Bell off", title="Bell", timeout=3)

    def action_copy(self) -> None:
        """``y``: the screen's selected value to the clipboard (OSC 52), and a toast."""
        screen = self._visible()
        target = screen.copy_target() if screen is not None else None
        if target is None:
            self.notify("nothing to copy here", timeout=2)
            return
        what, text = target
        self.copy_to_clipboard(text)
        shown = clean(text)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        self.notify(f"copied {what}: {shown}", timeout=3, markup=False)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            path = self.preferences.path or default_config_path()
            self.push_screen(HelpScreen(self.help_sections(), home_relative(path)))

    def action_scorecard(self) -> None:
        if not isinstance(self.screen, ScorecardScreen):
            self.push_screen(ScorecardScreen())

    def open_trace(self, trace_id: str, *, span_id: str | None = None,
                   location: str | None = None) -> None:
        """Open a trace; ``span_id`` selects that span, ``location`` marks a finding."""
        self.push_screen(TraceScreen(trace_id, span_id=span_id, location=location))

    def action_show_mode(self, mode: str) -> None:
        """A screen's key: that screen itself, never a trace left open over it (``2``
        always shows the trace list)."""
        self.switch_mode(mode)
        for _ in range(len(self.screen_stack) - 1):
            self.pop_screen()

    async def show_traces(self, query: str, *, since_ns: int | None = None,
                          until_ns: int | None = None) -> None:
        """Switch to the trace list showing ``query`` (as typed after ``/``) in a range;
        escape there comes back to the screen this was called from."""
        came_from = self.current_mode
        await self.switch_mode("traces")
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        screen = self.screen
        if isinstance(screen, TracesScreen):
            screen.set_filter(query, since_ns=since_ns, until_ns=until_ns,
                              back_to=came_from if came_from != "traces" else None)

    def help_sections(self) -> list[tuple[str, list[Binding]]]:
        """Every binding with a description, grouped by where it applies: each screen's
        own (with its list's or tree's), the app's everywhere, and the movement keys
        lists and trees share (ids ``nav.*``)."""
        everywhere = bindings_by_id(type(self))
        shared = {i: b for cls in (TraceTable, SpanTree)
                  for i, b in bindings_by_id(cls).items() if i.startswith("nav.")}
        sections = [("Everywhere", list(everywhere.values()))]
        for title, classes in HELP_PLACES:
            own = {i: b for cls in classes for i, b in bindings_by_id(cls).items()
                   if i not in everywhere and i not in shared}
            sections.append((title, list(own.values())))
        sections.append(("Lists and trees", list(shared.values())))
        return sections

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, mode, _, title in SCREENS:
            yield SystemCommand(f"Screen: {title}", f"Switch to the {title.lower()} ({key})",
                                lambda mode=mode: self.action_show_mode(mode))
        yield SystemCommand("Pause / resume live updates", "Freeze the view (space)",
                            self.action_toggle_pause)
        yield SystemCommand("Readiness scorecard", "Production readiness from what was "
                            "observed (r)", self.action_scorecard)
        yield SystemCommand("Key bindings", "Show every key (?)", self.action_help)


# Where bindings apply, as the help screen groups them.
HELP_PLACES: list[tuple[str, tuple[type, ...]]] = [
    ("Dashboard", (DashboardScreen,)), ("Traces", (TracesScreen, TraceTable)),
    ("Trace", (TraceScreen, SpanTree, DetailPane)), ("Alerts", (AlertsScreen, AlertTable)),
    ("Security", (SecurityScreen, FindingTable)),
    ("Metrics", (MetricsScreen, MetricTable)), ("Logs", (LogsScreen, LogTable)),
    ("Conversations", (ConversationsScreen, ConversationTable)),
    ("Agents", (AgentsScreen, AgentTable)),
]


def binding_ids() -> set[str]:
    """Every binding id a keymap may name (the help screen lists them)."""
    return {i for cls in (AgentTopApp, *(c for _, group in HELP_PLACES for c in group))
            for i in bindings_by_id(cls)}


def make_app(
    db: Path,
    *,
    refresh_s: float = 1.0,
    clock: Callable[[], int] | None = None,
    rules: Sequence[Rule] | None = None,
    health_check: Callable[[], str | None] | None = None,
    preferences: Preferences | None = None,
    greeting: str | None = None,
) -> AgentTopApp:
    """The TUI over the database file ``db`` (which may not exist yet).

    ``refresh_s``: seconds between refreshes. ``clock``: returns "now" in ns (tests and
    screenshots pass a frozen one). ``rules``: the alert rules that colour the layer cards
    (default: the shipped rules). ``health_check``: called before every refresh, off the
    UI thread; a string it returns says why the receiver is gone, and the receiver then
    counts as not running (``agenttop run`` passes one that reports its ``serve`` child's
    exit, which it knows before the heartbeat goes stale). ``preferences``: the user's
    settings file (theme, bell, window, keymap; default: none of them). ``greeting``: a
    toast at start (``run --demo`` says where the demo traffic goes).
    """
    return AgentTopApp(db, refresh_s=refresh_s, clock=clock, rules=rules,
                       health_check=health_check, preferences=preferences,
                       greeting=greeting)
