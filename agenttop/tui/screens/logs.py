"""The log list (key ``6``): live, newest first, filtered in SQL, windowed.

A ``LiveListScreen`` over ``logs`` (through the ``logs_time`` index). ``v`` cycles the
minimum severity (all, INFO+, WARN+, ERROR+), ``/`` filters by text in the body, event
name or service, ``f`` follows the newest log, ``enter`` opens the log's span in its
trace. GenAI content
events (``gen_ai.user.message``, ``gen_ai.choice``, ...) read as ``role: content``. The
highlighted log's whole body shows in the pane below the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Input, Static

from agenttop.store.queries import (
    LOG_BODY_CHARS,
    SEVERITY_LEVELS,
    LogListRow,
    count_logs,
    list_logs,
)
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job
from agenttop.tui.screens.live_list import LiveListScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable
from agenttop.tui.widgets.span_detail import log_messages, message_words, severity_name

CELL_CHARS = 300
def severity_class(number: int) -> str:
    """The stylesheet class of a severity number (OTel ranges)."""
    if number >= 17:
        return "error"
    if number >= 13:
        return "warn"
    if number >= 9:
        return "info"
    return "debug"


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


class LogTable(ListTable[LogListRow]):
    """Logs, newest first, keyed by log id."""

    COLUMNS = COLUMNS
    FLEX = "body"
    SORT: ClassVar = {"time": lambda r: r.time_ns, "severity": lambda r: r.severity_number}
    ASCENDING = frozenset({"service", "event", "body"})
    FLEX_MIN = BODY_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open span", id="logs.open"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-table--error", "log-table--warn", "log-table--info", "log-table--debug",
        "log-table--role", "log-table--dim",
    }

    def _style(self, name: str):  # noqa: ANN202 - a rich Style
        return self.get_component_rich_style(f"log-table--{name}", partial=True)

    def cells(self, row: LogListRow) -> dict[str, Text]:
        severity = severity_name(row.severity_number, row.severity_text)
        body = Text(end="", no_wrap=True, overflow="ellipsis")
        lines = log_messages(row.event_name, row.body or row.event_messages)
        if lines:
            for i, (role, content) in enumerate(lines):
                # The finish reason is for the detail pane; the list shows the words.
                content = "\n".join(message_words(content))
                if i:
                    body.append("  ")
                body.append_text(safe(role + ":", self._style("role"), width=20))
                body.append(" ")
                body.append_text(safe(content, width=CELL_CHARS))
        else:
            body.append_text(safe(row.body or "", width=CELL_CHARS))
        event = (row.event_name or "").removeprefix("gen_ai.")
        return {
            "time": Text(fmt.clock(row.time_ns), end=""),
            "severity": safe(severity, self._style(severity_class(row.severity_number)),
                             width=5),
            "service": safe(row.service, width=CELL_CHARS),
            "event": safe(event, self._style("dim"), width=CELL_CHARS),
            "body": body,
        }

    def show_logs(self, rows: list[LogListRow], *, follow: bool) -> None:
        self.show_rows(rows, lambda row: str(row.log_id), self.cells, follow=follow)


class LogsScreen(LiveListScreen):
    """The live list of logs."""

    NOUN = "Logs"
    FILTER_ID = "log-filter"
    INFO_ID = "logs-info"
    TABLE_ID = "log-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "cycle_severity", "Severity", id="logs.severity",
                tooltip="Minimum severity: all, INFO+, WARN+, ERROR+"),
    ]

    def __init__(self) -> None:
        super().__init__(id="logs")
        self.min_severity = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder="filter: words in the body, event name or service",
                    id=self.FILTER_ID, classes="-hidden")
        yield Static(id=self.INFO_ID)
        yield LogTable(id=self.TABLE_ID)
        with VerticalScroll(id="log-detail-pane"):
            yield Static(id="log-detail")
        yield Footer()

    @property
    def table(self) -> LogTable:
        return self.query_one(LogTable)

    # --- refresh ----------------------------------------------------------------------
    def copy_target(self) -> tuple[str, str] | None:
        row = self.table.selected_item()
        return ("log message", row.body) if row is not None and row.body else None

    def collect(self) -> Job:
        sev, text, limit, cap = self.min_severity, self.filter, self.limit, self.COUNT_CAP

        def job(conn: apsw.Connection) -> LogsData:
            return LogsData(list_logs(conn, min_severity=sev, text=text, limit=limit),
                            count_logs(conn, min_severity=sev, text=text, cap=cap))

        return job

    def apply(self, data: LogsData) -> None:
        self.table.fit_columns()
        self.table.show_logs(data.rows, follow=self.follow)
        self.shown_rows(len(data.rows), data.total)
        self.show_detail()

    @property
    def filtered(self) -> bool:
        return bool(self.query_text or self.min_severity)

    def palette(self) -> list[tuple[str, str, str]]:
        return [("Cycle log severity", "all, INFO+, WARN+, ERROR+ (v)", "cycle_severity"),
                *super().palette()]

    def info_extras(self, info: Text) -> None:
        info.append(f"   severity {dict(SEVERITY_LEVELS)[self.min_severity]} (v)")

    def show_detail(self) -> None:
        row = self.table.selected_item()
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
        lines = log_messages(row.event_name, row.body or row.event_messages)
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
        self.changed()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.show_detail()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        row = self.table.items.get(str(event.row_key.value))
        if row is None:
            return
        if not row.trace_id:
            self.notify("This log is not linked to a trace.", title="No trace",
                        severity="warning", timeout=4)
            return
        self.agenttop.open_trace(row.trace_id, span_id=row.span_id or None)
