"""The trace list's table: one row per trace, keyed by trace id (a ``ListTable``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from agenttop.store.queries import TraceRow
from agenttop.tui import fmt
from agenttop.tui.text import safe
from agenttop.tui.widgets.list_table import ListTable

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
    ("layers", "Layers", 21),
    ("cost", "Cost", 8),  # "$0.0042", "no price"; "*": some calls had no price
    ("findings", "PII", 3),
)
ROOT_MIN_WIDTH = 16
CELL_CHARS = 200  # a list cell never needs more characters than this


class TraceTable(ListTable[TraceRow]):
    """Traces, newest first, keyed by trace id."""

    COLUMNS = COLUMNS
    FLEX = "root"
    GROW = {"service": 26}  # "rc2-pydantic-ai-v2-http", "research-agent" whole
    HIDE = ("trace", "cost", "spans", "service")  # at 80 columns: layers and PII stay
    SORT: ClassVar = {"start": lambda r: r.start_ns, "duration": lambda r: r.duration_ns,
                      "spans": lambda r: r.span_count, "errors": lambda r: r.error_count,
                      "layers": lambda r: len(r.layers), "cost": lambda r: r.cost_usd,
                      "findings": lambda r: r.finding_count}
    ASCENDING = frozenset({"trace", "root", "service"})
    FLEX_MIN = ROOT_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open trace", id="traces.open"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trace-table--missing", "trace-table--error", "trace-table--findings",
        "trace-table--dim", *(f"trace-table--layer-{layer}" for layer in LAYER_TAGS),
    }

    today_ns: int | None = None  # "now", for starts on another day to show their date

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
            "start": Text(fmt.clock(row.start_ns, today_ns=self.today_ns), end=""),
            "trace": Text(row.trace_id[:8], style=dim, end=""),
            "root": root,
            "service": safe(row.service or "", width=CELL_CHARS),
            "duration": Text(fmt.duration(row.duration_ns), justify="right", end=""),
            "spans": Text(str(row.span_count), justify="right", end=""),
            "errors": (Text(str(row.error_count), style=self._style("error"), justify="right",
                            end="") if row.error_count
                       else Text("·", style=dim, justify="right", end="")),
            "layers": layers,
            "cost": Text(fmt.usd(row.cost_usd, row.unpriced, "*"), justify="right", end="",
                         style=dim if row.cost_usd is None else ""),
            "findings": (Text(f"⚠{row.finding_count}", style=self._style("findings"), end="")
                         if row.finding_count else Text("", end="")),
        }

    def show_traces(self, rows: Sequence[TraceRow], *, follow: bool) -> None:
        self.show_rows(rows, lambda row: row.trace_id, self.cells, follow=follow)
