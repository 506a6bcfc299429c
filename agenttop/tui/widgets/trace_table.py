"""The trace list: a DataTable updated in place by row key, never rebuilt.

Each refresh hands over the rows of the current window, newest first. Rows are matched
by trace id: changed cells are updated, new rows added, rows that left the window
removed, and the table is sorted once if the order changed. The cursor stays on the
trace it was on (or on the newest one when following). Every cell is a ``Text`` built by
``agenttop.tui.text.safe``: DataTable would parse a ``str`` as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message

from agenttop.store.queries import TraceRow
from agenttop.tui import fmt
from agenttop.tui.text import safe
from agenttop.tui.widgets.flex_table import FlexTable

LAYER_TAGS = {"prompt": "prm", "tool": "tool", "memory": "mem", "runtime": "run",
              "auth": "auth", "other": "oth"}
LAYER_ORDER = {layer: i for i, layer in enumerate(LAYER_TAGS)}
# (key, label, width); the root column takes what the others leave.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("start", "Start", 12),
    ("trace", "Trace", 8),
    ("root", "Root span", 0),
    ("service", "Service", 13),
    ("duration", "Duration", 8),
    ("spans", "Spans", 5),
    ("errors", "Err", 3),
    ("layers", "Layers", 25),
    ("findings", "PII", 3),
)
ROOT_MIN_WIDTH = 16
CELL_CHARS = 200  # a list cell never needs more characters than this


class SortText(Text):
    """A cell that carries the row's sort key: DataTable sorts by cell values only."""

    __slots__ = ("order",)

    def __init__(self, text: str, order: tuple, **kwargs: object) -> None:
        super().__init__(text, **kwargs)  # type: ignore[arg-type]
        self.order = order


class TraceTable(FlexTable):
    """Traces, newest first, keyed by trace id."""

    COLUMNS = COLUMNS
    FLEX = "root"
    FLEX_MIN = ROOT_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open trace", id="traces.open"),
        Binding("j", "cursor_down", "Down", show=False, id="nav.down"),
        Binding("k", "cursor_up", "Up", show=False, id="nav.up"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trace-table--missing", "trace-table--error", "trace-table--findings",
        "trace-table--dim", *(f"trace-table--layer-{layer}" for layer in LAYER_TAGS),
    }

    class UserMoved(Message):
        """The user moved the cursor (keys or mouse): following the newest row stops."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._cells: dict[str, dict[str, Text]] = {}
        self._order: list[str] = []

    # --- user movement ----------------------------------------------------------------
    def _moved(self) -> None:
        self.post_message(self.UserMoved())

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

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._moved()

    def on_click(self) -> None:
        self._moved()

    # --- content ----------------------------------------------------------------------
    def _style(self, name: str):  # noqa: ANN202 - a rich Style
        # Partial: no background baked in, so the cursor row still shows.
        return self.get_component_rich_style(f"trace-table--{name}", partial=True)

    def cells(self, row: TraceRow) -> dict[str, Text]:
        dim = self._style("dim")
        if row.root_name is None:
            root = Text("(root not received)", style=self._style("missing"), end="",
                        no_wrap=True, overflow="ellipsis")
        else:
            root = safe(row.root_name, width=CELL_CHARS)
        layers = Text(end="", no_wrap=True, overflow="ellipsis")
        # The layer table's order (prompt, tool, ...), not the stored alphabetical one.
        for layer in sorted(row.layers, key=lambda x: LAYER_ORDER.get(x, len(LAYER_ORDER))):
            if layers:
                layers.append(" ")
            layers.append(LAYER_TAGS.get(layer, layer[:4]),
                          style=self._style(f"layer-{layer}") if layer in LAYER_TAGS else "")
        return {
            "start": SortText(fmt.clock(row.start_ns), (row.start_ns, row.trace_id), end=""),
            "trace": Text(row.trace_id[:8], style=dim, end=""),
            "root": root,
            "service": safe(row.service or "", width=CELL_CHARS),
            "duration": Text(fmt.duration(row.duration_ns), justify="right", end=""),
            "spans": Text(str(row.span_count), justify="right", end=""),
            "errors": (Text(str(row.error_count), style=self._style("error"), justify="right",
                            end="") if row.error_count
                       else Text("·", style=dim, justify="right", end="")),
            "layers": layers,
            "findings": (Text(f"⚠{row.finding_count}", style=self._style("findings"), end="")
                         if row.finding_count else Text("", end="")),
        }

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    def selected_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def show_rows(self, rows: Sequence[TraceRow], *, follow: bool) -> None:
        """Make the table hold exactly ``rows`` (in their order), changing only what changed."""
        selected = self.selected_key()
        wanted = [r.trace_id for r in rows]
        wanted_set = set(wanted)
        for key in [k for k in self._order if k not in wanted_set]:
            self.remove_row(key)
            del self._cells[key]
        for row in rows:
            new = self.cells(row)
            old = self._cells.get(row.trace_id)
            if old is None:
                self.add_row(*new.values(), key=row.trace_id)
            else:
                for column, cell in new.items():
                    if cell != old[column]:
                        self.update_cell(row.trace_id, column, cell)
            self._cells[row.trace_id] = new
        current = [k for k in self._order if k in wanted_set]
        current += [k for k in wanted if k not in set(current)]
        if current != wanted:
            self.sort("start", key=lambda cell: cell.order, reverse=True)
        self._order = wanted
        if follow and wanted:
            self.move_cursor(row=0, scroll=True)
        elif selected in wanted_set:
            index = wanted.index(selected)  # type: ignore[arg-type]
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)
