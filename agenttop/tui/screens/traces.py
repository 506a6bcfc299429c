"""The trace list (key ``2``): live, newest first, filtered in SQL, windowed.

The table holds one window of ``traces`` (``PAGE`` rows, one more page each time the
cursor nears its end), never the whole table. ``/`` opens the filter (free text plus
``service:``, ``layer:``, ``errors``, ``findings``; see ``parse_trace_filter``), ``f``
keeps the cursor on the newest trace as traces arrive, ``enter`` opens one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static

from agenttop.store.queries import (
    FILTER_HELP,
    TraceFilter,
    TraceRow,
    count_traces,
    list_traces,
    parse_trace_filter,
)
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.trace_table import TraceTable

PAGE = 200
COUNT_CAP = 10_000
NEAR_END = 20  # rows before the end of the window at which the next page is loaded


@dataclass(frozen=True)
class TracesData:
    rows: list[TraceRow]
    total: int  # matching traces, counted up to COUNT_CAP


class TracesScreen(LiveScreen):
    """The live list of traces."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="traces.filter"),
        Binding("f", "toggle_follow", "Follow", id="traces.follow",
                tooltip="Keep the cursor on the newest trace"),
        Binding("escape", "clear_filter", "Clear filter", id="traces.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__(id="traces")
        self.filter = TraceFilter()
        self.limit = PAGE
        self.follow = False
        self.total = 0
        self.shown = 0
        # A start-time range set by a jump (an alert's window); typing keeps it, escape
        # clears it.
        self.range: tuple[int | None, int | None] = (None, None)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder=f"filter: {FILTER_HELP}", id="filter", classes="-hidden")
        yield Static(id="traces-info")
        yield TraceTable(id="trace-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TraceTable).focus()
        self.watch(self.app, "paused", lambda _: self.show_info(), init=False)
        self.show_info()

    @property
    def table(self) -> TraceTable:
        return self.query_one(TraceTable)

    # --- refresh ----------------------------------------------------------------------
    def collect(self) -> Job:
        f, limit = self.filter, self.limit

        def job(conn: apsw.Connection) -> TracesData:
            return TracesData(list_traces(conn, f, limit=limit),
                              count_traces(conn, f, cap=COUNT_CAP))

        return job

    def apply(self, data: TracesData) -> None:
        self.table.show_rows(data.rows, follow=self.follow)
        self.total = data.total
        self.shown = len(data.rows)
        self.show_info()

    def show_info(self) -> None:
        info = Text("Traces ", end="")
        if self.shown:
            more = "+" if self.total >= COUNT_CAP else ""
            info.append(f"1–{self.shown:,} of {self.total:,}{more}")
        else:
            info.append("none" + (" match" if not self.filter.empty else " yet"))
        if not self.filter.empty:
            info.append("   filter: ")
            info.append_text(safe(self.query_one("#filter", Input).value, width=40))
        since, until = self.range
        if since is not None or until is not None:
            info.append(f"   started {fmt.clock(since, millis=False)}–"
                        f"{'now' if until is None else fmt.clock(until, millis=False)}")
        for problem in self.filter.problems:
            info.append("   ")
            info.append_text(safe(problem, width=60))
        info.append("   ")
        info.append("⏸ PAUSED" if self.agenttop.paused else "● LIVE")
        if self.follow:
            info.append("   ⇡ FOLLOW")
        self.query_one("#traces-info", Static).update(info)

    # --- actions ----------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def set_filter(self, text: str, *, since_ns: int | None = None,
                   until_ns: int | None = None) -> None:
        """Show the traces matching ``text`` (as typed after ``/``) started in a range."""
        self.range = (since_ns, until_ns)
        box = self.query_one("#filter", Input)
        with box.prevent(Input.Changed):
            box.value = text
        box.set_class(not text, "-hidden")
        self.filter = replace(parse_trace_filter(text), since_ns=since_ns, until_ns=until_ns)
        self.limit = PAGE
        self.follow = False
        self.table.focus()
        self.show_info()
        self.invalidate()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus and box.value:
            self.table.focus()  # leave the filter as typed
            return
        if self.range != (None, None) and not box.value:
            self.set_filter("")
            return
        self.range = (None, None)
        box.value = ""
        box.add_class("-hidden")
        self.table.focus()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=0)
        self.show_info()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        since, until = self.range
        new = replace(parse_trace_filter(event.value), since_ns=since, until_ns=until)
        if new != self.filter:
            self.filter = new
            self.limit = PAGE
            self.show_info()
            self.invalidate()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.add_class("-hidden")
        self.table.focus()

    @on(TraceTable.UserMoved)
    def _user_moved(self) -> None:
        if self.follow:
            self.follow = False
            self.show_info()

    @on(DataTable.RowHighlighted)
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        table = self.table
        if table.row_count >= self.limit and event.cursor_row >= table.row_count - NEAR_END:
            self.limit += PAGE
            self.invalidate()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.agenttop.open_trace(event.row_key.value)
