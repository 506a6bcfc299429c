"""The trace list (key ``2``): live, newest first, filtered in SQL, windowed.

A ``LiveListScreen``: ``/`` filters (free text plus ``service:``, ``layer:``, ``errors``,
``findings``; see ``parse_trace_filter``), ``f`` follows the newest trace, ``enter`` opens
one. A jump from an alert adds a start-time range, kept while typing, cleared by
``escape``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, Static

from agenttop.store.queries import (
    FILTER_HELP,
    TraceFilter,
    TraceRow,
    count_traces,
    filter_hints,
    list_traces,
    parse_trace_filter,
)
from agenttop.store.rows import SKEW_TOLERANCE_NS
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job
from agenttop.tui.screens.diff import DiffScreen
from agenttop.tui.screens.live_list import LiveListScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.trace_table import TraceTable


@dataclass(frozen=True)
class TracesData:
    rows: list[TraceRow]
    total: int  # matching traces, counted up to COUNT_CAP
    ahead: int  # traces dated ahead of now (skewed clocks), left out of the list
    now_ns: int
    hints: list[str]  # when nothing matched: names asked for that nothing has


class TracesScreen(LiveListScreen):
    """The live list of traces."""

    NOUN = "Traces"
    FILTER_ID = "filter"
    INFO_ID = "traces-info"
    TABLE_ID = "trace-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "mark", "Mark", id="traces.mark",
                tooltip="Mark this trace, to compare another with it (d)"),
        Binding("d", "diff", "Diff", id="traces.diff",
                tooltip="Compare the selected trace with the marked one"),
    ]

    def __init__(self) -> None:
        # A start-time range set by a jump (an alert's window); typing keeps it, escape
        # clears it.
        self.range: tuple[int | None, int | None] = (None, None)
        self.ahead = 0
        self.hints: list[str] = []  # names the filter asks for that nothing has
        self.marked: str | None = None  # a trace to compare others with
        self.back_to: str | None = None  # the screen a jump came from: escape returns
        super().__init__(id="traces")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder=f"filter: {FILTER_HELP}", id=self.FILTER_ID, classes="-hidden")
        yield Static(id=self.INFO_ID)
        yield TraceTable(id=self.TABLE_ID)
        yield Footer()

    @property
    def table(self) -> TraceTable:
        return self.query_one(TraceTable)

    # --- refresh ----------------------------------------------------------------------
    def collect(self) -> Job:
        now_ns = self.agenttop.now_ns()
        f = replace(self.filter, horizon_ns=now_ns + SKEW_TOLERANCE_NS)
        ahead = TraceFilter(horizon_ns=f.horizon_ns, skewed=True)
        limit, cap = self.limit, self.COUNT_CAP

        def job(conn: apsw.Connection) -> TracesData:
            rows = list_traces(conn, f, limit=limit)
            return TracesData(rows, count_traces(conn, f, cap=cap),
                              0 if f.skewed else count_traces(conn, ahead, cap=cap), now_ns,
                              [] if rows else filter_hints(conn, f))

        return job

    def apply(self, data: TracesData) -> None:
        self.ahead = data.ahead
        self.hints = data.hints
        self.table.today_ns = data.now_ns
        self.table.show_traces(data.rows, follow=self.follow)
        self.shown_rows(len(data.rows), data.total)

    def parse_query(self, text: str) -> TraceFilter:
        since, until = self.range
        return replace(parse_trace_filter(text), since_ns=since, until_ns=until)

    @property
    def filtered(self) -> bool:
        return not self.filter.empty

    def info_extras(self, info: Text) -> None:
        since, until = self.range
        if since is not None or until is not None:
            info.append(f"   started {fmt.clock(since, millis=False)}–"
                        f"{'now' if until is None else fmt.clock(until, millis=False)}")
        for problem in (*self.filter.problems, *self.hints):
            info.append("   ")
            info.append_text(safe(problem, width=100))
        if self.ahead:
            info.append(f"   {self.ahead:,} dated ahead of now (skewed clocks): /skewed")
        if self.marked:
            info.append(f"   marked {self.marked[:8]} (d compares)", style="bold")

    def copy_target(self) -> tuple[str, str] | None:
        selected = self.table.selected_key()
        return ("trace id", selected) if selected else None

    # --- actions ----------------------------------------------------------------------
    def action_mark(self) -> None:
        selected = self.table.selected_key()
        if selected is None:
            return
        self.marked = None if selected == self.marked else selected
        self.show_info()
        self.notify(f"marked {selected[:8]}: select another trace and press d"
                    if self.marked else "mark cleared", timeout=3)

    def action_diff(self) -> None:
        selected = self.table.selected_key()
        if self.marked is None:
            self.notify("mark a trace first (m), then select another and press d",
                        severity="warning", timeout=4)
        elif selected is None or selected == self.marked:
            self.notify("select another trace than the marked one", severity="warning",
                        timeout=4)
        else:
            self.app.push_screen(DiffScreen(self.marked, selected))

    def set_filter(self, text: str, *, since_ns: int | None = None,
                   until_ns: int | None = None, back_to: str | None = None) -> None:
        """Show the traces matching ``text`` (as typed after ``/``) started in a range;
        ``back_to``: the screen (mode) escape returns to, clearing the filter."""
        self.range = (since_ns, until_ns)
        self.back_to = back_to
        box = self.filter_box
        with box.prevent(Input.Changed):
            box.value = text
        box.set_class(not text, "-hidden")
        self.set_query(text)
        self.follow = False
        self.table.focus()
        self.changed()

    def action_clear_filter(self) -> None:
        box = self.filter_box
        if self.back_to is not None and not box.has_focus:
            # Opened from another screen (an alert's breaching traces): escape goes back
            # there, and the list is whole again for the next visit.
            mode, self.back_to = self.back_to, None
            self.set_filter("")
            self.agenttop.action_show_mode(mode)
            return
        if not (box.has_focus and box.value):
            if self.range != (None, None) and not box.value:
                self.set_filter("")
                return
            self.range = (None, None)
        super().action_clear_filter()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.agenttop.open_trace(event.row_key.value)
