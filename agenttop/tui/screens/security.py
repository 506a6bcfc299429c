"""Security (key ``4``): PII and prompt-injection findings, newest first.

A window of ``findings`` (``PAGE`` rows through ``findings_time``), filtered in SQL with
``/`` (``kind:``, ``pattern:``, ``direction:``, ``service:``, free text on the location
and excerpt; see ``parse_finding_filter``), above a line of findings per minute over the
last 15 minutes and counts per pattern. Only the stored excerpt is shown: it was redacted
at ingest, and nothing else of the value is read. ``enter`` opens the trace with the
finding's span selected and its location marked in the detail pane.

Below, the calls the receiver refused (the ``audit`` table: missing or wrong token,
malformed request), newest first: time, client address, signal, reason and how many calls
the row stands for. Nothing else of a refused call is ever recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static

from agenttop.store.audit import RefusedCall, list_refused, refused_by_reason
from agenttop.store.queries import (
    FINDING_FILTER_HELP,
    FindingFilter,
    FindingListRow,
    findings_summary,
    list_findings,
    parse_finding_filter,
)
from agenttop.tui import fmt
from agenttop.tui.keys import VI_KEYS
from agenttop.tui.receiver import refused_summary
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.flex_table import FlexTable

PAGE = 200
REFUSED_PAGE = 100
SPARK_MINUTES = 15
COLUMNS = (("time", "time", 8), ("kind", "kind", 9), ("pattern", "pattern", 15),
           ("direction", "dir", 6), ("service", "service", 13), ("location", "location", 22),
           ("trace", "trace", 8), ("excerpt", "excerpt", 48))


class FindingTable(DataTable):
    """Findings, keyed by finding id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open span", id="security.open",
                tooltip="The trace, with the finding's span selected"),
        *VI_KEYS,
    ]


class RefusedTable(FlexTable):
    """Refused calls, newest first, keyed by audit id."""

    COLUMNS = (("time", "time", 8), ("peer", "client", 0), ("signal", "signal", 7),
               ("reason", "reason", 17), ("count", "calls", 7))
    FLEX = "peer"
    BINDINGS: ClassVar[list[BindingType]] = [*VI_KEYS]


@dataclass(frozen=True)
class SecurityData:
    rows: list[FindingListRow]
    per_minute: list[int]
    per_pattern: dict[str, int]
    refused: list[RefusedCall]
    refused_recent: dict[str, int]  # by reason, over the last SPARK_MINUTES


class SecurityScreen(LiveScreen):
    """PII and injection findings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="security.filter"),
        Binding("escape", "clear_filter", "Clear filter", id="security.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__(id="security")
        self.filter = FindingFilter()
        self.findings: dict[str, FindingListRow] = {}
        self._shown: list[FindingListRow] | None = None
        self._refused_shown: list[RefusedCall] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder=f"filter: {FINDING_FILTER_HELP}", id="finding-filter",
                    classes="-hidden")
        yield Static(id="security-info")
        yield Static(id="security-counts")
        yield FindingTable(id="findings-table", cursor_type="row")
        yield Static(id="finding-detail")
        yield Static(id="refused-info")
        yield RefusedTable(id="refused-table", cursor_type="row", classes="-hidden")
        yield Footer()

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.table.add_column(label, key=key, width=width)
        self.table.focus()
        self.query_one("#security-info", Static).update(Text("Findings: loading…", end=""))

    @property
    def table(self) -> FindingTable:
        return self.query_one("#findings-table", FindingTable)

    # --- refresh ------------------------------------------------------------------------
    def collect(self) -> Job:
        f, now_ns = self.filter, self.agenttop.now_ns()

        def job(conn: apsw.Connection) -> SecurityData:
            per_minute, per_pattern = findings_summary(conn, f, now_ns, SPARK_MINUTES)
            recent = refused_by_reason(conn, now_ns - SPARK_MINUTES * 60 * fmt.NS_PER_S)
            return SecurityData(list_findings(conn, f, limit=PAGE), per_minute, per_pattern,
                                list_refused(conn, limit=REFUSED_PAGE), recent)

        return job

    def apply(self, data: SecurityData) -> None:
        info = Text("Findings ", end="")
        n = len(data.rows)
        info.append(f"newest {n:,}" if n >= PAGE else f"{n:,}" if n else
                    "none" + (" match" if not self.filter.empty else " yet"))
        if not self.filter.empty:
            info.append("   filter: ")
            info.append_text(safe(self.query_one("#finding-filter", Input).value, width=50))
        info.append("   excerpts are redacted at ingest")
        self.query_one("#security-info", Static).update(info)

        counts = Text(f"last {SPARK_MINUTES}m ", end="", no_wrap=True, overflow="ellipsis")
        counts.append(fmt.sparkline(data.per_minute, SPARK_MINUTES), style="bold")
        counts.append(f" {sum(data.per_minute):,}")
        for pattern, count in sorted(data.per_pattern.items(), key=lambda kv: (-kv[1], kv[0])):
            counts.append("  ·  ")
            counts.append_text(safe(pattern, width=24))
            counts.append(f" {count:,}")
        self.query_one("#security-counts", Static).update(counts)
        self._show_refused(data)

        if data.rows == self._shown:
            return
        self._shown = data.rows
        table = self.table
        selected = None
        if table.row_count and 0 <= table.cursor_row < table.row_count:
            selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear()
        self.findings = {}
        for row in data.rows:
            key = str(row.finding_id)
            self.findings[key] = row
            table.add_row(*self._cells(row), key=key)
        if selected in self.findings:
            table.move_cursor(row=table.get_row_index(selected), scroll=False)
        self._show_detail()

    def _show_refused(self, data: SecurityData) -> None:
        info = Text(end="", no_wrap=True, overflow="ellipsis")
        info.append("Refused calls  ", style="bold")
        info.append(f"{refused_summary(data.refused_recent)} in the last {SPARK_MINUTES}m   "
                    "(never the token or the payload)")
        self.query_one("#refused-info", Static).update(info)
        if data.refused == self._refused_shown:
            return
        self._refused_shown = data.refused
        table = self.query_one("#refused-table", RefusedTable)
        table.set_class(not data.refused, "-hidden")
        selected = None
        if 0 <= table.cursor_row < table.row_count:
            selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear()
        for row in data.refused:
            table.add_row(
                Text(fmt.clock(row.time_ns, millis=False), end=""),
                safe(row.peer, width=80),  # as the client's connection reported it
                safe(row.signal, width=7),
                safe(row.reason, "bold", width=17),
                Text(f"{row.count:,}", justify="right", end=""),
                key=str(row.audit_id))
        if selected is not None and any(str(r.audit_id) == selected for r in data.refused):
            table.move_cursor(row=table.get_row_index(selected), scroll=False)

    @on(DataTable.RowHighlighted, "#findings-table")
    def _show_detail(self) -> None:
        """The highlighted finding whole: its excerpt (the stored, redacted one) and ids."""
        finding = self.selected()
        detail = Text(end="")
        if finding is not None:
            width = (self.size.width or 120) - 4
            detail.append_text(safe(f"{finding.kind} {finding.pattern} in {finding.signal} "
                                    f"{finding.location}", "bold", width=width))
            detail.append("\n")
            detail.append_text(safe(finding.excerpt, width=width))
            detail.append("\n")
            detail.append_text(safe(f"trace {finding.trace_id or '–'}  span "
                                    f"{finding.span_id or '–'}  service {finding.service}",
                                    "dim", width=width))
        self.query_one("#finding-detail", Static).update(detail)

    @staticmethod
    def _cells(row: FindingListRow) -> list[Text]:
        bad = "bold" if row.kind == "injection" else ""
        where = row.location if row.signal == "span" else f"log {row.location}"
        return [
            Text(fmt.clock(row.time_ns, millis=False), end=""),
            safe(row.kind, bad, width=9),
            safe(row.pattern, bad, width=16),
            safe(row.direction or "–", width=6),
            safe(row.service, width=14),
            safe(where, width=24),
            safe((row.trace_id or "–")[:8], "dim", width=8),
            safe(row.excerpt, width=48),  # the stored, redacted excerpt: nothing else
        ]

    # --- actions ------------------------------------------------------------------------
    def selected(self) -> FindingListRow | None:
        table = self.table
        if not table.row_count or not 0 <= table.cursor_row < table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.findings.get(key) if key is not None else None

    def action_open_finding(self) -> None:
        finding = self.selected()
        if finding is None:
            return
        if not finding.trace_id or not finding.span_id:
            self.notify("This log record carries no trace or span id: there is no span "
                        "to open.", title="No span", severity="warning")
            return
        self.agenttop.open_trace(finding.trace_id, span_id=finding.span_id,
                                 location=finding.location)

    def action_filter(self) -> None:
        box = self.query_one("#finding-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#finding-filter", Input)
        if box.has_focus and box.value:
            self.table.focus()  # leave the filter as typed
            return
        box.value = ""
        box.add_class("-hidden")
        self.table.focus()

    @on(Input.Changed, "#finding-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        new = parse_finding_filter(event.value)
        if new != self.filter:
            self.filter = new
            self.invalidate()

    @on(Input.Submitted, "#finding-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.add_class("-hidden")
        self.table.focus()

    @on(DataTable.RowSelected, "#findings-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_finding()
