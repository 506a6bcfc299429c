"""The metric list (key ``5``): series in pages read by SQL, figures for the rows on screen.

One row per series (name, type, unit, service, attributes), listed from the writer's
``metric_series`` by an index: most recently active first, or by name (``s``), filtered
by name, service or attribute text (``/``), one page at a time (``LiveListScreen``). The
figures over the window (``w`` cycles 1m, 5m, 15m) and the trend are read only for the
rows the screen shows (and a margin), each series through its own index range: sums show
their rate per second and last value, gauges their last value, histograms and summaries
p50/p95/p99 (in the unit recorded) and their count; the trend is one figure per minute
over the last 15 minutes (rate for sums, value for gauges, p99 for histograms). So the
cost follows the screen, never the number of series in the file.

``c`` shows cardinality: the metric names with the most series and, for the selected
row's metric, each attribute key's distinct values. ``enter`` shows a series' attributes
and figures below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import apsw
import orjson
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, Static

from agenttop.analysis.health import MetricHealth, SeriesPoints
from agenttop.config import format_duration
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.series import (
    CARDINALITY_LIMIT,
    KeyCardinality,
    NameCardinality,
    SeriesRow,
    count_series,
    keys_of,
    list_series,
    names_over,
    series_by_name,
)
from agenttop.tui import fmt
from agenttop.tui.preferences import preferred_window_s
from agenttop.tui.screens.base import Job, next_window
from agenttop.tui.screens.live_list import LiveListScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable

TREND_MINUTES = 15
# Types whose figure of note is a count of observations.
OBSERVED = ("histogram", "exponential_histogram", "summary")
TYPE_TAGS = {"sum": "sum", "gauge": "gauge", "histogram": "hist",
             "exponential_histogram": "exp", "summary": "summ"}
FIGURES_MARGIN = 10  # rows below the visible ones whose figures are read too
CARDINALITY_ROWS = 8


def value(v: float | None, unit: str) -> str:
    """A figure in its unit: durations as durations, ``1`` and ``{thing}`` as numbers."""
    if v is None:
        return "–"
    scale = {"s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1.0}.get(unit)
    if scale is not None:
        return fmt.duration(v * scale)
    if v != 0 and abs(v) < 10:
        text = f"{v:.3g}"
    elif abs(v) < 1e6:
        text = f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:.1f}"
    else:
        text = fmt.count(v)
    if unit in ("", "1") or unit.startswith("{"):
        return text
    return f"{text} {unit}" if unit != "%" else f"{text}%"


def figures(m: MetricHealth) -> str:
    """The window's main figures: a sum's rate, a gauge's value, a histogram's quantiles."""
    if m.type == "sum":
        return fmt.rate(m.rate)
    if m.type == "gauge":
        return value(m.last, m.unit)
    return (f"p50 {value(m.p50, m.unit)} p95 {value(m.p95, m.unit)} "
            f"p99 {value(m.p99, m.unit)}")


def trend_figure(m: MetricHealth) -> float | None:
    if m.type == "sum":
        return m.rate
    if m.type == "gauge":
        return m.last
    return m.p99 if m.p99 is not None else (float(m.count) if m.count is not None else None)


def read_metrics(conn: apsw.Connection, now_ns: int, window_s: int, *,
                 sort: str = "activity", text: str = "", limit: int = 200,
                 figured: int | None = None, cardinality_of: str | None = None,
                 minutes: int = TREND_MINUTES) -> MetricsData:
    """One refresh: a page of ``limit`` series active in the window, with figures and a
    trend for the first ``figured`` of them (all when None), and cardinality when
    ``cardinality_of`` names a metric ("" for the names alone)."""
    since = now_ns - window_s * SECOND_NS
    rows = list_series(conn, since, sort=sort, text=text, limit=limit)
    shown = rows if figured is None else rows[:figured]
    first_end = now_ns - (minutes - 1) * MINUTE_NS
    points = SeriesPoints(conn, [r.series_id for r in shown],
                          min(since, first_end - 120 * SECOND_NS), now_ns)
    health = {m.series_id: m for m in points.health(now_ns, (window_s,))[window_s]}
    trends: dict[int, list[float]] = {r.series_id: [0.0] * minutes for r in shown}
    for i in range(minutes):
        # Two minutes wide: a cumulative sum needs two points for a rate, and the usual
        # export interval is a minute.
        narrow = points.health(first_end + i * MINUTE_NS, (60, 120))
        for width in (120, 60):  # the one-minute figure wins where it exists
            for m in narrow[width]:
                figure = trend_figure(m)
                if figure is not None:
                    trends[m.series_id][i] = figure  # type: ignore[index]
    data = MetricsData(window_s, rows, count_series(conn, since, text=text), len(shown),
                       health, trends, names_over(conn, CARDINALITY_LIMIT)[:3])
    if cardinality_of is not None:
        data.names = series_by_name(conn, CARDINALITY_ROWS)
        data.keys = keys_of(conn, cardinality_of)[:CARDINALITY_ROWS] if cardinality_of else []
    return data


@dataclass
class MetricsData:
    window_s: int
    rows: list[SeriesRow]
    total: int  # series active in the window, counted up to LiveListScreen.COUNT_CAP
    figured: int  # rows (from the top) whose figures were read
    health: dict[int, MetricHealth]  # series_id -> figures, for the rows on screen
    trends: dict[int, list[float]]
    over: list[NameCardinality]  # metric names past CARDINALITY_LIMIT, the most first
    names: list[NameCardinality] = field(default_factory=list)  # with the cardinality pane
    keys: list[KeyCardinality] = field(default_factory=list)


COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Metric", 0),
    ("type", "Type", 5),
    ("service", "Service", 13),
    ("attributes", "Attributes", 14),
    ("figures", "Rate · value · p50 p95 p99", 30),
    ("count", "Last/n", 7),
    ("trend", "Last 15m", TREND_MINUTES),
)
NAME_MIN_WIDTH = 16


class MetricTable(ListTable[SeriesRow]):
    """Metric series keyed by their ``series_id``."""

    COLUMNS = COLUMNS
    FLEX = "name"
    GROW = {"service": 26, "attributes": 40}
    HIDE = ("trend", "count", "type", "service")
    SORTABLE = False  # the screen's own s: most recently active or by name, in SQL
    FLEX_MIN = NAME_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", id="metrics.details"),
    ]


def _attributes(row: SeriesRow) -> dict:
    try:
        parsed = orjson.loads(row.attributes)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def distinguishing(rows: list[SeriesRow]) -> dict[int, set[str]]:
    """Per series, the attribute keys whose values tell it from the other series of its
    metric and service in ``rows`` (a key some of them lack counts): shown first, so that
    two rows never read the same. Keyed by series id."""
    groups: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for row in rows:
        groups.setdefault((row.name, row.service), []).append(
            (row.series_id, _attributes(row)))
    out: dict[int, set[str]] = {}
    for members in groups.values():
        keys = {k for _, attributes in members for k in attributes}
        differ = {k for k in keys
                  if len({repr(attributes.get(k)) for _, attributes in members}) > 1}
        for series_id, _ in members:
            out[series_id] = differ
    return out


class MetricsScreen(LiveListScreen):
    """Metric series, a page at a time, with figures for the rows on screen."""

    NOUN = "Metric series"
    NEWEST_FIRST = False  # by activity, rows move up and down; by name, they do not arrive
    FILTER_ID = "metric-filter"
    INFO_ID = "metrics-info"
    TABLE_ID = "metric-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "cycle_window", "Window", id="metrics.window",
                tooltip="Figures over the last 1m, 5m or 15m"),
        Binding("s", "cycle_sort", "Sort", id="metrics.sort",
                tooltip="Most recently active first, or by name"),
        Binding("c", "cardinality", "Cardinality", id="metrics.cardinality",
                tooltip="Series per metric name and per attribute key"),
    ]

    def __init__(self) -> None:
        super().__init__(id="metrics")
        self.window_s = preferred_window_s(self)
        self.sort = "activity"
        self.data: MetricsData | None = None
        self.detail_key: str | None = None  # the series in the detail pane
        self.figured = 0  # rows of the table whose figures were read

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder="filter: text in a metric's name, service or attributes",
                    id=self.FILTER_ID, classes="-hidden")
        yield Static(id=self.INFO_ID)
        yield MetricTable(id=self.TABLE_ID)
        yield Static(id="metric-cardinality", classes="-hidden")
        yield Static(id="metric-detail", classes="-hidden")
        yield Footer()

    @property
    def table(self) -> MetricTable:
        return self.query_one(MetricTable)

    @property
    def cardinality_shown(self) -> bool:
        return not self.query_one("#metric-cardinality").has_class("-hidden")

    def _rows_on_screen(self) -> int:
        table = self.table
        return int(table.scroll_offset.y) + max(table.size.height, 10) + FIGURES_MARGIN

    def copy_target(self) -> tuple[str, str] | None:
        row = self.table.selected_item()
        if row is None:
            return None
        labels = ",".join(f"{k}={v}" for k, v in _attributes(row).items())
        return "series", f"{row.name}{{{labels}}}" if labels else row.name

    def collect(self) -> Job:
        now, window_s, sort, text = self.agenttop.now_ns(), self.window_s, self.sort, \
            self.query_text.strip()
        limit, figured = self.limit, self._rows_on_screen()
        of = None
        if self.cardinality_shown:
            selected = self.table.selected_item()
            of = selected.name if selected is not None else ""
        return lambda conn: read_metrics(conn, now, window_s, sort=sort, text=text,
                                         limit=limit, figured=figured, cardinality_of=of)

    def apply(self, data: MetricsData) -> None:
        self.data = data
        self.figured = data.figured
        table = self.table
        table.fit_columns()
        differ = distinguishing(data.rows)
        table.show_rows(data.rows, lambda r: str(r.series_id),
                        lambda r: self.cells(r, data.health.get(r.series_id),
                                             data.trends.get(r.series_id, []),
                                             differ.get(r.series_id, set())),
                        follow=self.follow)
        self.shown_rows(len(data.rows), data.total)
        if self.cardinality_shown:
            self.show_cardinality(data)
        if self.detail_key in table.items and not self.query_one(
                "#metric-detail").has_class("-hidden"):
            self.show_detail(self.detail_key)  # type: ignore[arg-type]

    def cells(self, row: SeriesRow, m: MetricHealth | None, trend: list[float],
              differ: set[str]) -> dict[str, Text]:
        # The values that tell this series from its metric's others first (by the last word
        # of their key: type=input), then the rest; enter shows every key whole.
        pairs = sorted(_attributes(row).items(), key=lambda kv: kv[0] not in differ)
        attributes = Text(end="", no_wrap=True, overflow="ellipsis")
        for i, (k, v) in enumerate(pairs):
            if i:
                attributes.append(", ", style="dim")
            if k in differ:
                attributes.append_text(safe(f"{k.rsplit('.', 1)[-1]}={v}", width=200))
            else:
                attributes.append_text(safe(f"{k}={v}", "dim", width=200))
        # "1" and annotations ("{request}") say "a count": nothing worth a column's room.
        unit = "" if row.unit in ("", "1") or row.unit.startswith("{") else f" ({row.unit})"
        # Sums: the last (cumulative) value; histograms and summaries: observations.
        last = "–"
        if m is not None and m.type == "sum":
            last = value(m.last, m.unit)
        elif m is not None and m.type in OBSERVED and m.count is not None:
            last = fmt.count(m.count)
        return {
            "name": safe(row.name + unit, width=200),
            "type": Text(TYPE_TAGS.get(row.type, row.type), end=""),
            "service": safe(row.service, width=200),
            "attributes": attributes,
            "figures": safe(figures(m) if m is not None else "–", width=200),
            "count": Text(last, justify="right", end="", no_wrap=True, overflow="ellipsis"),
            "trend": Text(fmt.sparkline(trend, TREND_MINUTES) if m is not None else "", end=""),
        }

    def info_extras(self, info: Text) -> None:
        info.append(f"   window {format_duration(self.window_s)} (w)   sort {self.sort} (s)")
        over = self.data.over if self.data else []
        if over:
            info.append("   ")
            names = ", ".join(f"{o.name} {o.series:,}" for o in over)
            info.append_text(safe(f"series > {CARDINALITY_LIMIT:,}: {names} (c)",
                                  style="bold yellow", width=70))

    def show_cardinality(self, data: MetricsData) -> None:
        text = Text("Series per metric (most first)", style="bold", end="")
        for n in data.names:
            text.append("\n  ")
            text.append(f"{n.series:>9,}  ", style="bold red" if n.series > CARDINALITY_LIMIT
                        else "")
            text.append_text(safe(n.name, width=60))
        if not data.names:
            text.append("\n  no metric series yet", style="dim")
        if data.keys:
            text.append("\n")
            text.append_text(safe(f"Attribute keys of {data.keys[0].name}", "bold", width=70))
            text.append("  (distinct values · series with the key)", style="dim")
            for k in data.keys:
                text.append(f"\n  {k.values:>9,}  {k.series:>9,}  ")
                text.append_text(safe(k.key, width=60))
        self.query_one("#metric-cardinality", Static).update(text)

    def show_detail(self, key: str) -> None:
        row = self.table.items.get(key)
        pane = self.query_one("#metric-detail", Static)
        if row is None:
            pane.add_class("-hidden")
            return
        m = self.data.health.get(row.series_id) if self.data else None
        text = Text(end="")
        text.append_text(safe(row.name, "bold"))
        points = f"{m.points} points in the window" if m is not None else "figures: scroll here"
        text.append_text(safe(f"  {row.type}  unit {row.unit or '–'}  service {row.service}  "
                              f"{points}  first seen {fmt.clock(row.first_ns, millis=False)}"))
        for k, v in _attributes(row).items():
            text.append("\n  ")
            text.append_text(safe(f"{k} = {v}", width=200))
        if m is not None:
            text.append("\n")
            text.append_text(safe(figures(m)))
            if m.type == "sum":
                text.append(f"  last {value(m.last, m.unit)}")
            if m.count is not None:
                text.append(f"  count {m.count:,}")
        pane.update(text)
        pane.remove_class("-hidden")

    def palette(self) -> list[tuple[str, str, str]]:
        return [*super().palette(),
                ("Cycle metrics window", "1m, 5m, 15m (w)", "cycle_window"),
                ("Sort metrics", "Most recently active first, or by name (s)", "cycle_sort"),
                ("Metric cardinality", "Series per metric and attribute key (c)",
                 "cardinality")]

    def action_cycle_window(self) -> None:
        self.window_s = next_window(self.window_s)
        self.changed()

    def action_cycle_sort(self) -> None:
        self.sort = "name" if self.sort == "activity" else "activity"
        self.changed()

    def action_cardinality(self) -> None:
        pane = self.query_one("#metric-cardinality", Static)
        pane.set_class(self.cardinality_shown, "-hidden")
        if self.cardinality_shown:
            pane.update(Text("loading…", style="dim"))
            self.invalidate()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Figures are read for the rows on screen: scrolling past them reads more, and the
        # cardinality pane follows the selected metric.
        if event.data_table is not self.table:
            return
        selected = self.table.selected_item()
        keys_of_other = (self.cardinality_shown and selected is not None and self.data
                         is not None and [k.name for k in self.data.keys[:1]] != [selected.name])
        past = self.figured < self.table.row_count and event.cursor_row >= self.figured - 1
        if past or keys_of_other:
            self.invalidate()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        pane = self.query_one("#metric-detail", Static)
        key = event.row_key.value
        if not pane.has_class("-hidden") and self.detail_key == key:
            pane.add_class("-hidden")  # enter again closes it
            return
        self.detail_key = key
        if key is not None:
            self.show_detail(key)
