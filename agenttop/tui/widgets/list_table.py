"""``ListTable``: every list of agenttop (traces, logs, findings, refused calls, alerts,
metric series) is a DataTable of rows keyed by id and updated in place, never rebuilt.

Columns are ``COLUMNS`` (key, label, width); the ``FLEX`` column (width 0) takes whatever
width the others leave. A narrow terminal hides the ``HIDE`` columns, in that order, until
the ``FLEX`` column has ``FLEX_MIN`` cells (at 80 columns the trace list keeps its layers
and PII columns and gives up its trace id, cost and span count).

``show_rows`` makes the table hold exactly the given items in their order: rows are
matched by key, changed cells updated, new rows added, rows that left removed, and the
table sorted once if the order changed. The cursor stays on the row it was on, or goes to
the top when following. Cells are ``Text`` (DataTable parses a ``str`` as markup).

Every column sorts the rows (by its ``SORT`` value, else by its text): ``s`` the next
column, ``S`` the other way, a click on a header by that column (again: the other way);
the header shows the order (``Duration▼``). A list read from the file a page at a time
sorts the rows it has read, and says so; ``s`` past the last column returns to the order
the rows came in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from agenttop.tui.keys import VI_KEYS

T = TypeVar("T")


def sort_items(items: Sequence[T], key: Callable[[T], Any], descending: bool) -> list[T]:
    """``items`` by ``key`` (missing values, None, last either way); stable."""
    def order(item: T) -> tuple[bool, Any]:
        value = key(item)
        missing = value is None
        return (not missing if descending else missing, 0 if missing else value)

    return sorted(items, key=order, reverse=descending)


class _TableMessage(Message):
    def __init__(self, table: ListTable) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> ListTable:
        return self.table


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
    HIDE: ClassVar[tuple[str, ...]] = ()
    # Column -> the value a row sorts by (a column not named sorts by its text, any case);
    # SORTABLE False: the table's rows keep their order (its screen sorts them); DEFAULT_SORT
    # the column sorted by at first (None: the order the rows are given in); ASCENDING the
    # columns read best A to Z or smallest first (others: biggest first).
    SORTABLE: ClassVar[bool] = True
    SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    DEFAULT_SORT: ClassVar[str | None] = None
    ASCENDING: ClassVar[frozenset[str]] = frozenset()
    BINDINGS: ClassVar[list[BindingType]] = [
        *VI_KEYS,
        Binding("g", "scroll_top", "Newest (top)", show=False, id="nav.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="nav.bottom"),
        Binding("s", "sort_next", "Sort", id="list.sort",
                tooltip="Sort by the next column (or click a column's header)"),
        Binding("S", "sort_reverse", "Reverse", id="list.reverse", show=False,
                tooltip="Sort the other way"),
    ]

    class UserMoved(_TableMessage):
        """The user moved the cursor (keys or mouse): following the newest row stops."""

    class Sorted(_TableMessage):
        """The user changed the order the table sorts its rows in."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.items: dict[str, T] = {}
        self._cells: dict[str, dict[str, Text]] = {}
        self._order: list[str] = []
        self._widest: dict[str, int] = {}  # GROW column -> its widest cell
        self.hidden: tuple[str, ...] = ()  # HIDE columns hidden at this width
        self.sort_column = self.DEFAULT_SORT
        self.descending = self.DEFAULT_SORT not in self.ASCENDING
        # The rows as last given, to show again in another order.
        self._given: tuple[Sequence[T], Callable[[T], str], Callable[[T], dict[str, Text]]] \
            | None = None

    # --- columns --------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._add_columns()
        self.fit_columns()

    def _add_columns(self) -> None:
        for key, label, width in self.COLUMNS:
            if key not in self.hidden:
                self.add_column(self._label(key, label), key=key,
                                width=self.FLEX_MIN if key == self.FLEX else
                                self._width(key, label, width))

    def _width(self, key: str, label: str, width: int | None) -> int | None:
        """A fixed column's width, with room for the sort arrow when it is sorted by."""
        if width and key == self.sort_column:
            return max(width, len(label) + 1)
        return width

    def _label(self, key: str, label: str) -> Text:
        if key != self.sort_column:
            return Text(label)
        return Text(label + ("▼" if self.descending else "▲"), style="bold")

    # --- sorting ------------------------------------------------------------------------
    @property
    def sort_label(self) -> str | None:
        """``duration ▼``: what the rows are sorted by, None when as given."""
        if self.sort_column is None:
            return None
        label = next(label for key, label, _ in self.COLUMNS if key == self.sort_column)
        return f"{label.lower()} {'▼' if self.descending else '▲'}"

    def sort_by(self, column: str | None, descending: bool | None = None) -> None:
        """Sort by ``column`` (None: as given); the same column again: the other way."""
        if descending is None:
            descending = (not self.descending if column == self.sort_column
                          else column not in self.ASCENDING)
        self.sort_column, self.descending = column, descending
        for key, label, width in self.COLUMNS:
            col = self.columns.get(key)  # type: ignore[call-overload]
            if col is not None:
                col.label = self._label(key, label)
                if width and key not in self.GROW:
                    col.width = self._width(key, label, width)  # type: ignore[assignment]
        self.fit_columns()
        self._clear_caches()  # the header is cached as rendered
        self._require_update_dimensions = True
        self.refresh()
        if self._given is not None:
            items, key_of, cells_of = self._given
            self.show_rows(items, key_of, cells_of)
        self.post_message(self.Sorted(self))

    def action_sort_next(self) -> None:
        if not self.SORTABLE:
            raise SkipAction()  # the screen's own "s", if it has one
        keys: list[str | None] = [key for key, _, _ in self.COLUMNS]
        if self.DEFAULT_SORT is None:
            keys.append(None)  # back to the order the rows came in
        at = keys.index(self.sort_column) if self.sort_column in keys else -1
        following = keys[(at + 1) % len(keys)]
        self.sort_by(following, following not in self.ASCENDING)

    def action_sort_reverse(self) -> None:
        if not self.SORTABLE:
            raise SkipAction()
        if self.sort_column is not None:
            self.sort_by(self.sort_column, not self.descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if self.SORTABLE:
            self.sort_by(str(event.column_key.value))

    def on_resize(self) -> None:
        self.fit_columns()

    def _free(self, hidden: tuple[str, ...]) -> int:
        """The FLEX column's width with ``hidden`` hidden."""
        shown = [self._width(key, label, w) or 0 for key, label, w in self.COLUMNS
                 if key not in hidden]
        return (self.size.width - sum(shown) - 2 * self.cell_padding * len(shown) - 2)

    def _hide(self) -> None:
        """Hide as few HIDE columns as give the FLEX column FLEX_MIN cells."""
        hidden: tuple[str, ...] = ()
        for key in self.HIDE:
            if self._free(hidden) >= self.FLEX_MIN:
                break
            hidden += (key,)
        if hidden == self.hidden:
            return
        # DataTable cannot hide a column: lay the table out again with the rows it holds.
        selected, self.hidden = self.selected_key(), hidden
        self.clear(columns=True)
        self._add_columns()
        for key in self._order:
            cells = self._cells[key]
            self.add_row(*(cells[k] for k, _, _ in self.COLUMNS if k not in hidden), key=key)
        if selected in self._order:
            self.move_cursor(row=self._order.index(selected), scroll=False)

    def fit_columns(self) -> None:
        flex = self.columns.get(self.FLEX)  # type: ignore[call-overload]
        if flex is None:
            return
        if self.HIDE and self.size.width:
            self._hide()
        widths = {key: self._width(key, label, w) or 0 for key, label, w in self.COLUMNS
                  if key != self.FLEX and key not in self.hidden}
        free = self._free(self.hidden)
        # What the FLEX column can give up and keep FLEX_KEEP; the GROW columns take it.
        room = free - max(self.FLEX_MIN, self.FLEX_KEEP)
        grow = {key: most for key, most in self.GROW.items() if key in widths}
        for key, most in grow.items():
            extra = min(max(0, min(most, self._widest.get(key, 0)) - widths[key]),
                        max(0, room))
            widths[key] += extra
            free -= extra
            room -= extra
        changed = False
        grown = [(key, widths[key]) for key in grow]
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
        """Make the table hold exactly ``items`` (in their order, or sorted by the column
        the user chose), changing only what changed."""
        self._given = (items, key_of, cells_of)
        pairs = [(key_of(item), item) for item in items]
        cells = {key: cells_of(item) for key, item in pairs}
        column = self.sort_column
        if column is not None:
            by = self.SORT.get(column)
            pairs = sort_items(pairs, (lambda pair: by(pair[1])) if by is not None else (
                lambda pair: cells[pair[0]][column].plain.casefold()), self.descending)
        items = [item for _, item in pairs]
        selected = self.selected_key()
        wanted = [key for key, _ in pairs]
        wanted_set = set(wanted)
        for key in [k for k in self._order if k not in wanted_set]:
            self.remove_row(key)
            del self._cells[key]
        for key in wanted:
            new = cells[key]
            old = self._cells.get(key)
            if old is None:
                self.add_row(*(cell for column, cell in new.items()
                               if column not in self.hidden), key=key)
            else:
                for column, cell in new.items():
                    if cell != old[column] and column not in self.hidden:
                        self.update_cell(key, column, cell)
                    else:
                        new[column] = old[column]  # the object the table holds
            self._cells[key] = new
        self.items = dict(zip(wanted, items, strict=True))
        current = [k for k in self._order if k in wanted_set]
        current += [k for k in wanted if k not in set(current)]
        if current != wanted and wanted:
            # DataTable sorts by cell values: find each row's rank by its first cell.
            first = str(next(iter(self.columns)).value)  # the first column shown
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
