"""``LiveListScreen``: what the live lists (traces, logs, findings) share.

- a filter box (``/`` opens it, typing filters at once, ``escape`` leaves it and, pressed
  again, clears it); the screen parses the text (``set_query``);
- a window of rows read by SQL: ``PAGE`` rows, one more page each time the cursor comes
  within ``NEAR_END`` rows of the window's end;
- follow (``f``): the cursor stays on the newest row as rows arrive, until the user moves
  it (``ListTable.UserMoved``);
- the info line: how many rows match (counted up to ``COUNT_CAP``; "loading…" until the
  rows of a new filter, severity or window arrive), the filter, what the screen adds
  (``info_extras``), and LIVE or PAUSED;
- a new filter, severity or window opens the list at its newest row; when not following,
  rows that arrive above the viewport are counted ("↑ 12 newer", ``g`` goes there);
- ``s`` / ``S`` / a header click sort the rows read (``ListTable``), said in the info line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from agenttop.tui.screens.base import LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.list_table import ListTable


class LiveListScreen(LiveScreen):
    """A live list of rows, newest first; subclasses read and show the rows."""

    NOUN: ClassVar[str] = "Rows"  # the info line's first word
    FILTER_ID: ClassVar[str] = "filter"
    INFO_ID: ClassVar[str] = "list-info"
    TABLE_ID: ClassVar[str] = "list-table"
    NEWEST_FIRST: ClassVar[bool] = True  # new rows come in on top ("↑ N newer")
    PAGE: ClassVar[int] = 200
    NEAR_END: ClassVar[int] = 20
    COUNT_CAP: ClassVar[int] = 10_000

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="list.filter"),
        Binding("f", "toggle_follow", "Follow", id="list.follow",
                tooltip="Keep the cursor on the newest row"),
        Binding("escape", "clear_filter", "Clear filter", id="list.clear_filter"),
    ]

    def __init__(self, *, id: str) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.query_text = ""
        self.filter: Any = self.parse_query("")
        self.limit = self.PAGE
        self.follow = False
        self.total = 0
        self.shown = 0
        # What the list shows changed (filter, severity, window): "loading…" until its rows
        # arrive, then the cursor on the newest one.
        self.awaiting_rows = True
        self.to_top = False
        self.newer = 0  # rows that arrived above the viewport since the user left the top
        self._newest_key: str | None = None  # the newest row's key, as of the last refresh

    # --- what subclasses give ---------------------------------------------------------------
    def parse_query(self, text: str) -> Any:
        """The filter the rows are read with, from the text typed (here the text itself)."""
        return text

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the list (for "none match" against "none yet")."""
        return bool(self.query_text)

    def set_query(self, text: str) -> bool:
        """Take the filter as typed; True if what the list shows changes."""
        self.query_text = text
        new = self.parse_query(text)
        changed = new != self.filter
        self.filter = new
        return changed

    def info_extras(self, info: Text) -> None:
        """Append what this screen says in its info line (after the filter)."""

    def palette(self) -> list[tuple[str, str, str]]:
        return [(f"Filter {self.NOUN.lower()}", "Open the filter (/)", "filter"),
                ("Follow newest", "Keep the cursor on the newest row (f)", "toggle_follow")]

    # --- widgets ------------------------------------------------------------------------
    @property
    def table(self) -> ListTable:
        return self.query_one(f"#{self.TABLE_ID}", ListTable)

    @property
    def filter_box(self) -> Input:
        return self.query_one(f"#{self.FILTER_ID}", Input)

    def on_mount(self) -> None:
        self.table.focus()
        self.watch(self.app, "paused", lambda _: self.show_info(), init=False)
        self.show_info()

    def shown_rows(self, shown: int, total: int) -> None:
        """A refresh brought ``shown`` rows of ``total`` matching ones."""
        self.shown, self.total = shown, total
        self.awaiting_rows = False
        table = self.table
        keys = table.keys
        if self.to_top:
            self.to_top = False
            self.newer = 0
            if table.row_count:
                table.move_cursor(row=0)
            table.scroll_to(y=0, animate=False, immediate=True)
        elif self.NEWEST_FIRST and not self.follow and table.sort_column is None and \
                self._newest_key in keys and (
                table.cursor_row > 0 or table.scroll_offset.y > 0):
            self.newer += keys.index(self._newest_key)  # type: ignore[arg-type]
        self._newest_key = keys[0] if keys else None
        self.show_info()

    def show_info(self) -> None:
        info = Text(f"{self.NOUN} ", end="")
        if self.awaiting_rows:
            info.append("loading…")
        elif self.shown:
            more = "+" if self.total >= self.COUNT_CAP else ""
            info.append(f"1–{self.shown:,} of {self.total:,}{more}")
        else:
            info.append("none" + (" match" if self.filtered else " yet"))
        if self.query_text.strip():
            info.append("   filter: ")
            info.append_text(safe(self.query_text, width=40))
        self.info_extras(info)
        sort = self.table.sort_label
        if sort is not None:
            info.append(f"   sorted by {sort}")
            if self.shown < self.total:
                info.append(f" among the newest {self.shown:,}")
        info.append("   ")
        info.append("⏸ PAUSED" if self.agenttop.paused else "● LIVE")
        if self.follow:
            info.append("   ⇡ FOLLOW")
        elif self.newer:
            info.append(f"   ↑ {self.newer:,} newer (g)", style="bold")
        self.query_one(f"#{self.INFO_ID}", Static).update(info)

    def changed(self) -> None:
        """What the list shows changed: from its first page again, at its newest row."""
        self.limit = self.PAGE
        self.awaiting_rows = self.to_top = True
        self.show_info()
        self.invalidate()

    # --- actions ------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.filter_box
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.filter_box
        if box.has_focus and box.value:
            self.table.focus()  # leave the filter as typed
            return
        box.value = ""
        box.add_class("-hidden")
        self.table.focus()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=0)
            self.newer = 0
        self.show_info()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.input.id == self.FILTER_ID and self.set_query(event.value):
            self.changed()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != self.FILTER_ID:
            return
        if not event.value:
            event.input.add_class("-hidden")
        self.table.focus()

    @on(ListTable.Sorted)
    def _sorted(self, event: ListTable.Sorted) -> None:
        if event.control is self.table:
            self.newer = 0
            self.show_info()

    @on(ListTable.UserMoved)
    def _user_moved(self, event: ListTable.UserMoved) -> None:
        if event.control is not self.table:
            return
        if self.follow:
            self.follow = False
            self.show_info()
        if self.newer and self.table.cursor_row == 0:  # back at the newest: seen them all
            self.newer = 0
            self.show_info()

    @on(DataTable.RowHighlighted)
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        table = self.table
        if (event.data_table is table and table.row_count >= self.limit
                and event.cursor_row >= table.row_count - self.NEAR_END):
            self.limit += self.PAGE
            self.invalidate()
