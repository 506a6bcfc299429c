"""Security (key ``4``): PII and prompt-injection findings, newest first.

A ``LiveListScreen`` over ``findings`` (through ``findings_time``), filtered in SQL with
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
from textual.widgets import DataTable, Header, Input, Static

from agenttop.store.audit import RefusedCall, list_refused, refused_by_reason
from agenttop.store.queries import (
    FINDING_FILTER_HELP,
    FindingFilter,
    FindingListRow,
    count_matching_findings,
    findings_summary,
    list_finding_groups,
    parse_finding_filter,
)
from agenttop.store.rows import MINUTE_NS
from agenttop.tui import fmt
from agenttop.tui.receiver import refused_summary
from agenttop.tui.screens.base import Job
from agenttop.tui.screens.live_list import LiveListScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable

REFUSED_PAGE = 100
SPARK_MINUTES = 15


class FindingTable(ListTable[FindingListRow]):
    """Findings, newest first, keyed by finding id."""

    COLUMNS = (("time", "time", 8), ("kind", "kind", 9), ("pattern", "pattern", 15),
               ("direction", "dir", 6), ("service", "service", 13),
               ("location", "location", 26), ("trace", "trace", 8), ("excerpt", "excerpt", 0))
    FLEX, FLEX_MIN = "excerpt", 20
    HIDE = ("trace", "service", "direction", "kind")
    SORT: ClassVar = {"time": lambda r: r.time_ns}
    ASCENDING = frozenset({"kind", "pattern", "direction", "service", "location", "trace",
                           "excerpt"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open span", id="security.open",
                tooltip="The trace, with the finding's span selected"),
    ]

    @staticmethod
    def cells(row: FindingListRow) -> dict[str, Text]:
        bad = "bold" if row.kind == "injection" else ""
        if row.seen:  # one value found in several places of its trace
            where = f"×{row.found:,}: {fmt.places(row.seen)}"
        else:
            where = row.location if row.signal == "span" else f"log {row.location}"
        return {
            "time": Text(fmt.clock(row.time_ns, millis=False), end=""),
            "kind": safe(row.kind, bad, width=9),
            "pattern": safe(row.pattern, bad, width=16),
            "direction": safe(row.direction or "–", width=6),
            "service": safe(row.service, width=14),
            "location": safe(where, width=26),
            "trace": safe((row.trace_id or "–")[:8], "dim", width=8),
            "excerpt": safe(row.excerpt, width=120),  # the stored, redacted excerpt only
        }


class RefusedTable(ListTable[RefusedCall]):
    """Refused calls, newest first, keyed by audit id."""

    COLUMNS = (("time", "time", 8), ("peer", "client", 0), ("signal", "signal", 7),
               ("reason", "reason", 17), ("count", "calls", 7))
    FLEX = "peer"
    SORT: ClassVar = {"time": lambda r: r.time_ns, "count": lambda r: r.count}
    ASCENDING = frozenset({"peer", "signal", "reason"})

    @staticmethod
    def cells(row: RefusedCall) -> dict[str, Text]:
        return {
            "time": Text(fmt.clock(row.time_ns, millis=False), end=""),
            "peer": safe(row.peer, width=80),  # as the client's connection reported it
            "signal": safe(row.signal, width=7),
            "reason": safe(row.reason, "bold", width=17),
            "count": Text(f"{row.count:,}", justify="right", end=""),
        }


@dataclass(frozen=True)
class SecurityData:
    rows: list[FindingListRow]
    total: int  # matching findings, counted up to COUNT_CAP
    per_minute: list[int]
    per_pattern: dict[str, int]
    refused: list[RefusedCall]
    refused_recent: dict[str, int]  # by reason, over the last SPARK_MINUTES


class SecurityScreen(LiveListScreen):
    """PII and injection findings."""

    NOUN = "Findings"
    FILTER_ID = "finding-filter"
    INFO_ID = "security-info"
    TABLE_ID = "findings-table"

    def __init__(self) -> None:
        super().__init__(id="security")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder=f"filter: {FINDING_FILTER_HELP}", id=self.FILTER_ID,
                    classes="-hidden")
        yield Static(id=self.INFO_ID)
        yield Static(id="security-counts")
        yield FindingTable(id=self.TABLE_ID)
        yield Static(id="finding-detail")
        yield Static(id="refused-info")
        yield RefusedTable(id="refused-table", classes="-hidden")
        yield Footer()

    @property
    def table(self) -> FindingTable:
        return self.query_one(FindingTable)

    # --- refresh ------------------------------------------------------------------------
    def copy_target(self) -> tuple[str, str] | None:
        finding = self.table.selected_item()  # redacted at ingest: the excerpt as stored
        return ("finding", finding.excerpt) if finding is not None else None

    def collect(self) -> Job:
        f, now_ns, limit, cap = self.filter, self.agenttop.now_ns(), self.limit, self.COUNT_CAP

        def job(conn: apsw.Connection) -> SecurityData:
            per_minute, per_pattern = findings_summary(conn, f, now_ns, SPARK_MINUTES)
            recent = refused_by_reason(conn, now_ns - SPARK_MINUTES * MINUTE_NS)
            return SecurityData(list_finding_groups(conn, f, limit=limit),
                                count_matching_findings(conn, f, cap=cap), per_minute,
                                per_pattern, list_refused(conn, limit=REFUSED_PAGE), recent)

        return job

    def parse_query(self, text: str) -> FindingFilter:
        return parse_finding_filter(text)

    @property
    def filtered(self) -> bool:
        return not self.filter.empty

    def info_extras(self, info: Text) -> None:
        for problem in self.filter.problems:
            info.append("   ")
            info.append_text(safe(problem, width=80))
        info.append("   excerpts are redacted at ingest")

    def apply(self, data: SecurityData) -> None:
        counts = Text(f"last {SPARK_MINUTES}m ", end="", no_wrap=True, overflow="ellipsis")
        counts.append(fmt.sparkline(data.per_minute, SPARK_MINUTES), style="bold")
        counts.append(f" {sum(data.per_minute):,}")
        for pattern, count in sorted(data.per_pattern.items(), key=lambda kv: (-kv[1], kv[0])):
            counts.append("  ·  ")
            counts.append_text(safe(pattern, width=24))
            counts.append(f" {count:,}")
        self.query_one("#security-counts", Static).update(counts)
        self._show_refused(data)
        self.table.show_rows(data.rows, lambda row: str(row.finding_id), FindingTable.cells,
                             follow=self.follow)
        # The rows stand for the findings they group.
        self.shown_rows(min(sum(row.found for row in data.rows), data.total),
                        data.total)
        self._show_detail()

    def _show_refused(self, data: SecurityData) -> None:
        info = Text(end="", no_wrap=True, overflow="ellipsis")
        info.append("Refused calls  ", style="bold")
        info.append(f"{refused_summary(data.refused_recent)} in the last {SPARK_MINUTES}m   "
                    "(never the token or the payload)")
        self.query_one("#refused-info", Static).update(info)
        table = self.query_one(RefusedTable)
        table.set_class(not data.refused, "-hidden")
        table.show_rows(data.refused, lambda row: str(row.audit_id), RefusedTable.cells)

    @on(DataTable.RowHighlighted, "#findings-table")
    def _show_detail(self) -> None:
        """The highlighted finding whole: its excerpt (the stored, redacted one) and ids."""
        finding = self.table.selected_item()
        detail = Text(end="")
        if finding is not None:
            width = (self.size.width or 120) - 4
            detail.append_text(safe(f"{finding.kind} {finding.pattern} in {finding.signal} "
                                    f"{finding.location}", "bold", width=width))
            if finding.seen:
                detail.append_text(safe(f"   the same value {finding.found:,} times in this "
                                        f"trace: {fmt.places(finding.seen)}", width=width))
            detail.append("\n")
            detail.append_text(safe(finding.excerpt, width=width))
            detail.append("\n")
            detail.append_text(safe(f"trace {finding.trace_id or '–'}  span "
                                    f"{finding.span_id or '–'}  service {finding.service}",
                                    "dim", width=width))
        self.query_one("#finding-detail", Static).update(detail)

    # --- actions ------------------------------------------------------------------------
    def action_open_finding(self) -> None:
        finding = self.table.selected_item()
        if finding is None:
            return
        if not finding.trace_id or not finding.span_id:
            self.notify("This log record carries no trace or span id: there is no span "
                        "to open.", title="No span", severity="warning")
            return
        self.agenttop.open_trace(finding.trace_id, span_id=finding.span_id,
                                 location=finding.location)

    @on(DataTable.RowSelected, "#findings-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_finding()
