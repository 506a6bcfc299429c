"""The log list (key ``6``): live, newest first, filtered in SQL, windowed.

The table holds one window of ``logs`` (``PAGE`` rows through the ``logs_time`` index,
one more page each time the cursor nears its end). ``v`` cycles the minimum severity
(all, INFO+, WARN+, ERROR+), ``/`` filters by text in the body, event name or service,
``f`` follows the newest log, ``enter`` opens the log's span in its trace. GenAI content
events (``gen_ai.user.message``, ``gen_ai.choice``, ...) read as ``role: content``. The
highlighted log's whole body shows in the pane below the list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from agenttop.store.queries import (
    LOG_BODY_CHARS,
    SEVERITY_LEVELS,
    LogListRow,
    count_logs,
    list_logs,
)
from agenttop.tui import fmt
from agenttop.tui.keys import VI_KEYS
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.flex_table import FlexTable
from agenttop.tui.widgets.span_detail import message_lines, severity_name
from agenttop.tui.widgets.trace_table import SortText

PAGE = 200
COUNT_CAP = 10_000
NEAR_END = 20
CELL_CHARS = 300
# The role an event's name implies when its body does not say.
EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
               "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
               "gen_ai.choice": "assistant"}


def severity_class(number: int) -> str:
    """The stylesheet class of a severity number (OTel ranges)."""
    if number >= 17:
        return "error"
    if number >= 13:
        return "warn"
    if number >= 9:
        return "info"
    return "debug"


def log_messages(event_name: str | None, body: str | None) -> list[tuple[str, str]] | None:
    """A GenAI content event's body as (role, content) pairs; None for any other log."""
    if not event_name or not event_name.startswith("gen_ai.") or not body:
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    role = EVENT_ROLES.get(event_name)
    if isinstance(data, dict):
        if isinstance(data.get("message"), dict):  # gen_ai.choice
            message = dict(data["message"])
            if "finish_reason" in data and "finish_reason" not in message:
                message["finish_reason"] = data["finish_reason"]
            data = message
        elif "gen_ai.output.messages" in data or "gen_ai.input.messages" in data:
            lines: list[tuple[str, str]] = []
            for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
                lines += message_lines(data.get(key)) or []
            return lines or None
        if role and "role" not in data and ("content" in data or "parts" in data):
            data = {**data, "role": role}
    lines = message_lines(data)
    if lines and role:
        lines = [(role if r == "?" else r, c) for r, c in lines]
    return lines


def body_text(row: LogListRow) -> str:
    """What the list shows of a log's body: messages as ``role: content``."""
    lines = log_messages(row.event_name, row.body)
    if lines:
        return "  ".join(f"{role}: {content}" for role, content in lines)
    return row.body or ""


@dataclass(frozen=True)
class LogsData:
    rows: list[LogListRow]
    total: int


COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("time", "Time", 12),
    ("severity", "Sev", 5),
    ("service", "Service", 13),
    ("event", "Event", 18),
    ("body", "Body", 0),
)
BODY_MIN_WIDTH = 20


class LogTable(FlexTable):
    """Logs, newest first, keyed by log id."""

    COLUMNS = COLUMNS
    FLEX = "body"
    FLEX_MIN = BODY_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open span", id="logs.open"),
        *VI_KEYS,
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-table--error", "log-table--warn", "log-table--info", "log-table--debug",
        "log-table--role", "log-table--dim",
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.order: list[str] = []
        self.rows_by_key: dict[str, LogListRow] = {}
        self.user_moved = False

    def _style(self, name: str):  # noqa: ANN202 - a rich Style
        return self.get_component_rich_style(f"log-table--{name}", partial=True)

    def cells(self, row: LogListRow) -> list[Text]:
        severity = severity_name(row.severity_number, row.severity_text)
        body = Text(end="", no_wrap=True, overflow="ellipsis")
        lines = log_messages(row.event_name, row.body)
        if lines:
            for i, (role, content) in enumerate(lines):
                # The finish reason is for the detail pane; the list shows the words.
                content = "\n".join(line for line in content.split("\n")
                                     if not line.startswith("(finish: "))
                if i:
                    body.append("  ")
                body.append_text(safe(role + ":", self._style("role"), width=20))
                body.append(" ")
                body.append_text(safe(content, width=CELL_CHARS))
        else:
            body.append_text(safe(row.body or "", width=CELL_CHARS))
        event = (row.event_name or "").removeprefix("gen_ai.")
        return [
            SortText(fmt.clock(row.time_ns), (row.time_ns, row.log_id), end=""),
            safe(severity, self._style(severity_class(row.severity_number)), width=5),
            safe(row.service, width=CELL_CHARS),
            safe(event, self._style("dim"), width=CELL_CHARS),
            body,
        ]

    def show_rows(self, rows: list[LogListRow], *, follow: bool) -> None:
        """Show ``rows`` (newest first); the cursor stays on its log, or on the newest."""
        selected = self.selected_row()
        keys = [str(r.log_id) for r in rows]
        self.rows_by_key = dict(zip(keys, rows, strict=True))
        if keys != self.order:
            # Logs never change once stored: only the window moves, so rows are new or
            # gone. Remove those gone, add the new, sort once.
            wanted = set(keys)
            for key in [k for k in self.order if k not in wanted]:
                self.remove_row(key)
            known = set(self.order)
            for key, row in zip(keys, rows, strict=True):
                if key not in known:
                    self.add_row(*self.cells(row), key=key)
            self.sort("time", key=lambda cell: cell.order, reverse=True)
            self.order = keys
            if follow or selected is None:
                if keys:
                    self.move_cursor(row=0, scroll=True)
            elif str(selected.log_id) in self.rows_by_key:
                self.move_cursor(row=keys.index(str(selected.log_id)), scroll=True)

    def selected_row(self) -> LogListRow | None:
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.rows_by_key.get(self.order[self.cursor_row])


class LogsScreen(LiveScreen):
    """The live list of logs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "cycle_severity", "Severity", id="logs.severity",
                tooltip="Minimum severity: all, INFO+, WARN+, ERROR+"),
        Binding("slash", "filter", "Filter", id="logs.filter"),
        Binding("f", "toggle_follow", "Follow", id="logs.follow",
                tooltip="Keep the cursor on the newest log"),
        Binding("escape", "clear_filter", "Clear filter", id="logs.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__(id="logs")
        self.min_severity = 0
        self.text = ""
        self.limit = PAGE
        self.follow = False
        self.total = 0
        self.shown = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder="filter: words in the body, event name or service",
                    id="log-filter", classes="-hidden")
        yield Static(id="logs-info")
        yield LogTable(id="log-table")
        with VerticalScroll(id="log-detail-pane"):
            yield Static(id="log-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.watch(self.app, "paused", lambda _: self.show_info(), init=False)
        self.show_info()

    @property
    def table(self) -> LogTable:
        return self.query_one(LogTable)

    # --- refresh ----------------------------------------------------------------------
    def collect(self) -> Job:
        sev, text, limit = self.min_severity, self.text, self.limit

        def job(conn: apsw.Connection) -> LogsData:
            return LogsData(list_logs(conn, min_severity=sev, text=text, limit=limit),
                            count_logs(conn, min_severity=sev, text=text, cap=COUNT_CAP))

        return job

    def apply(self, data: LogsData) -> None:
        self.table.fit_columns()
        self.table.show_rows(data.rows, follow=self.follow)
        self.total = data.total
        self.shown = len(data.rows)
        self.show_info()
        self.show_detail()

    def severity_label(self) -> str:
        return dict(SEVERITY_LEVELS)[self.min_severity]

    def show_info(self) -> None:
        info = Text("Logs ", end="")
        if self.shown:
            more = "+" if self.total >= COUNT_CAP else ""
            info.append(f"1–{self.shown:,} of {self.total:,}{more}")
        else:
            info.append("none" + (" match" if self.text or self.min_severity else " yet"))
        info.append(f"   severity {self.severity_label()} (v)")
        if self.text:
            info.append("   filter: ")
            info.append_text(safe(self.text, width=40))
        info.append("   ")
        info.append("⏸ PAUSED" if self.agenttop.paused else "● LIVE")
        if self.follow:
            info.append("   ⇡ FOLLOW")
        self.query_one("#logs-info", Static).update(info)

    def show_detail(self) -> None:
        row = self.table.selected_row()
        pane = self.query_one("#log-detail", Static)
        if row is None:
            pane.update(Text("No log selected.", end=""))
            return
        text = Text(end="")
        text.append(fmt.clock(row.time_ns) + "  ")
        text.append_text(safe(severity_name(row.severity_number, row.severity_text),
                              "bold"))
        text.append("  ")
        text.append_text(safe(row.service))
        if row.event_name:
            text.append("  ")
            text.append_text(safe(row.event_name, "italic"))
        if row.trace_id:
            text.append(f"  trace {row.trace_id[:16]} span {row.span_id or '–'} (enter)")
        text.append("\n")
        lines = log_messages(row.event_name, row.body)
        if lines:
            for role, content in lines:
                text.append_text(safe(role + ":", "bold"))
                text.append(" ")
                text.append_text(safe(content, multiline=True))
                text.append("\n")
        else:
            text.append_text(safe(row.body or "", multiline=True))
        if row.body_chars > LOG_BODY_CHARS:
            text.append(f" … ({row.body_chars - LOG_BODY_CHARS:,} more characters)",
                        style="italic")
        pane.update(text)

    # --- actions ----------------------------------------------------------------------
    def action_cycle_severity(self) -> None:
        levels = [n for n, _ in SEVERITY_LEVELS]
        self.min_severity = levels[(levels.index(self.min_severity) + 1) % len(levels)]
        self.limit = PAGE
        self.show_info()
        self.invalidate()

    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        if box.has_focus and box.value:
            self.table.focus()
            return
        box.value = ""
        box.add_class("-hidden")
        self.table.focus()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=0)
        self.show_info()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.text:
            self.text = event.value
            self.limit = PAGE
            self.show_info()
            self.invalidate()

    @on(Input.Submitted, "#log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.add_class("-hidden")
        self.table.focus()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        table = self.table
        if table.row_count >= self.limit and event.cursor_row >= table.row_count - NEAR_END:
            self.limit += PAGE
            self.invalidate()

    def on_key(self, event: Any) -> None:
        # A key that moves the cursor ends following, as on the trace list.
        if self.follow and event.key in ("up", "down", "j", "k", "pageup", "pagedown",
                                         "end", "home") and self.table.has_focus:
            self.follow = False
            self.show_info()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        row = self.table.rows_by_key.get(str(event.row_key.value))
        if row is None:
            return
        if not row.trace_id:
            self.notify("This log is not linked to a trace.", title="No trace",
                        severity="warning", timeout=4)
            return
        self.agenttop.open_trace(row.trace_id, span_id=row.span_id or None)
