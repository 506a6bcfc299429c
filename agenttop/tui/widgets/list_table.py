"""``ListTable``: every list of agenttop (traces, logs, findings, refused calls, alerts,
metric series) is a DataTable of rows keyed by id and updated in place, never rebuilt.

Columns are ``COLUMNS`` (key, label, width); the ``FLEX`` column (width 0) takes whatever
width the others leave. ``show_rows`` makes the table hold exactly the given items in
their order: rows are matched by key, changed cells updated, new rows added, rows that
left removed, and the table sorted once if the order changed. The cursor stays on the
row it was on, or goes to the top when following. Cells are ``Text`` (DataTable parses
a ``str`` as markup).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from agenttop.tui.keys import VI_KEYS

T = TypeVar("T")


class ListTable(DataTable, Generic[T]):
    """Rows of items of type ``T``, keyed by ``key_of(item)``."""

    # (key, label, width); width 0: the FLEX column; None: as wide as its content.
    COLUMNS: ClassVar[tuple[tuple[str, str, int | None], ...]] = ()
    FLEX: ClassVar[str] = ""
    FLEX_MIN: ClassVar[int] = 16
    # Columns that widen to their widest cell, up to this many cells, while the FLEX
    # column keeps FLEX_KEEP: a service name is read whole when there is room.
    GROW: ClassVar[dict[str, int]] = {}
    FLEX_KEEP: ClassVar[int] = 32
    BINDINGS: ClassVar[list[BindingType]] = [
        *VI_KEYS,
        Binding("g", "scroll_top", "Newest (top)", show=False, id="nav.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="nav.bottom"),
    ]

    class UserMoved(Message):
        """The user moved the cursor (keys or mouse): following the newest row stops."""

        def __init__(self, table: ListTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> ListTable:
            return self.table

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.items: dict[str, T] = {}
        self._cells: dict[str, dict[str, Text]] = {}
        self._order: list[str] = []
        self._widest: dict[str, int] = {}  # GROW column -> its widest cell

    # --- columns --------------------------------------------------------------------------
    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, key=key,
                            width=self.FLEX_MIN if key == self.FLEX else width)
        self.fit_columns()

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        flex = self.columns.get(self.FLEX)  # type: ignore[call-overload]
        if flex is None:
            return
        widths = {key: w or 0 for key, _, w in self.COLUMNS if key != self.FLEX}
        free = (self.size.width - sum(widths.values()) - 2 * self.cell_padding
                * len(self.COLUMNS) - 2)
        # What the FLEX column can give up and keep FLEX_KEEP; the GROW columns take it.
        room = free - max(self.FLEX_MIN, self.FLEX_KEEP)
        for key, most in self.GROW.items():
            extra = min(max(0, min(most, self._widest.get(key, 0)) - widths[key]),
                        max(0, room))
            widths[key] += extra
            free -= extra
            room -= extra
        changed = False
        grown = [(key, widths[key]) for key in self.GROW]
        for key, width in [*grown, (self.FLEX, max(self.FLEX_MIN, free))]:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width = width
                changed = True
        if changed:
            self._require_update_dimensions = True
            self.refresh()

    # --- rows -----------------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    def selected_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def selected_item(self) -> T | None:
        key = self.selected_key()
        return None if key is None else self.items.get(key)

    def show_rows(self, items: Sequence[T], key_of: Callable[[T], str],
                  cells_of: Callable[[T], dict[str, Text]], *, follow: bool = False) -> None:
        """Make the table hold exactly ``items`` (in their order), changing only what
        changed."""
        selected = self.selected_key()
        wanted = [key_of(item) for item in items]
        wanted_set = set(wanted)
        for key in [k for k in self._order if k not in wanted_set]:
            self.remove_row(key)
            del self._cells[key]
        for key, item in zip(wanted, items, strict=True):
            new = cells_of(item)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*new.values(), key=key)
            else:
                for column, cell in new.items():
                    if cell != old[column]:
                        self.update_cell(key, column, cell)
                    else:
                        new[column] = old[column]  # the object the table holds
            self._cells[key] = new
        self.items = dict(zip(wanted, items, strict=True))
        current = [k for k in self._order if k in wanted_set]
        current += [k for k in wanted if k not in set(current)]
        if current != wanted and wanted:
            # DataTable sorts by cell values: find each row's rank by its first cell.
            first = self.COLUMNS[0][0] if self.COLUMNS else next(iter(self.columns))
            rank = {id(self._cells[k][first]): i for i, k in enumerate(wanted)}
            self.sort(first, key=lambda cell: rank[id(cell)])
        self._order = wanted
        if self.GROW:
            self._widest = {key: max((self._cells[k][key].cell_len for k in wanted),
                                     default=0) for key in self.GROW}
            self.fit_columns()
        if follow and wanted:
            self.move_cursor(row=0, scroll=True)
        elif selected in wanted_set:
            index = wanted.index(selected)  # type: ignore[arg-type]
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)

    # --- user movement ----------------------------------------------------------------
    def _moved(self) -> None:
        self.post_message(self.UserMoved(self))

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._moved()

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._moved()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._moved()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self._moved()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._moved()

    def on_click(self) -> None:
        self._moved()
