"""The metric list (key ``5``): every series with its figures over a window and a trend.

One row per series (name, type, unit, service, attributes), from ``metric_health`` over
the selected window (``w`` cycles 1m, 5m, 15m; 5m first): sums show their rate per second
and last value, gauges their last value, histograms and summaries p50/p95/p99 (in the unit
recorded) and their count. The trend is one figure per minute over the last 15 minutes
(rate for sums, value for gauges, p99 for histograms), each read as a narrow
``metric_health`` window ending at that minute, so the cost follows the points in the
last 15 minutes, never the file. ``enter`` shows a series' attributes and figures below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
import orjson
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from agenttop.analysis.health import WINDOWS_S, MetricHealth, metric_health
from agenttop.config import format_duration
from agenttop.store.rows import MINUTE_NS
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.list_table import ListTable

TREND_MINUTES = 15
# Types whose figure of note is a count of observations.
OBSERVED = ("histogram", "exponential_histogram", "summary")
TYPE_TAGS = {"sum": "sum", "gauge": "gauge", "histogram": "hist",
             "exponential_histogram": "exp", "summary": "summ"}

SeriesKey = tuple[str, str, str, str]  # name, type, service, attributes (sorted JSON)


def series_key(m: MetricHealth) -> SeriesKey:
    return (m.name, m.type, m.service,
            orjson.dumps(m.attributes, option=orjson.OPT_SORT_KEYS).decode())


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


def read_metrics(conn: apsw.Connection, now_ns: int, window_s: int,
                 minutes: int = TREND_MINUTES) -> MetricsData:
    series = metric_health(conn, now_ns, (window_s,)).get(window_s, [])
    trends: dict[SeriesKey, list[float]] = {series_key(m): [0.0] * minutes for m in series}
    minute_ns = MINUTE_NS
    for i in range(minutes):
        # Two minutes wide: a cumulative sum needs two points for a rate, and the usual
        # export interval is a minute.
        end = now_ns - (minutes - 1 - i) * minute_ns
        narrow = metric_health(conn, end, (60, 120))
        for window_s_ in (120, 60):  # the one-minute figure wins where it exists
            for m in narrow.get(window_s_, []):
                figure = trend_figure(m)
                line = trends.get(series_key(m))
                if line is not None and figure is not None:
                    line[i] = figure
    return MetricsData(window_s, series, trends)


@dataclass(frozen=True)
class MetricsData:
    window_s: int
    series: list[MetricHealth]
    trends: dict[SeriesKey, list[float]]


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


class MetricTable(ListTable[MetricHealth]):
    """Metric series keyed by (name, type, service, attributes)."""

    COLUMNS = COLUMNS
    FLEX = "name"
    FLEX_MIN = NAME_MIN_WIDTH

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", id="metrics.details"),
    ]


class MetricsScreen(LiveScreen):
    """Every metric series with its figures."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "cycle_window", "Window", id="metrics.window",
                tooltip="Figures over the last 1m, 5m or 15m"),
    ]

    def __init__(self) -> None:
        super().__init__(id="metrics")
        self.window_s = 300
        self.data: MetricsData | None = None
        self.detail_key: str | None = None  # the series in the detail pane

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="metrics-info")
        yield MetricTable(id="metric-table")
        yield Static(id="metric-detail", classes="-hidden")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.watch(self.app, "paused", lambda _: self.show_info(), init=False)
        self.show_info()

    @property
    def table(self) -> MetricTable:
        return self.query_one(MetricTable)

    def collect(self) -> Job:
        now, window_s = self.agenttop.now_ns(), self.window_s
        return lambda conn: read_metrics(conn, now, window_s)

    def apply(self, data: MetricsData) -> None:
        self.data = data
        table = self.table
        table.fit_columns()
        table.show_rows(data.series, lambda m: "\x00".join(series_key(m)),
                        lambda m: self.cells(m, data.trends.get(series_key(m), [])))
        self.show_info()
        if self.detail_key in table.items and not self.query_one(
                "#metric-detail").has_class("-hidden"):
            self.show_detail(self.detail_key)  # type: ignore[arg-type]

    def cells(self, m: MetricHealth, trend: list[float]) -> dict[str, Text]:
        attributes = ", ".join(f"{k}={v}" for k, v in sorted(m.attributes.items()))
        # "1" and annotations ("{request}") say "a count": nothing worth a column's room.
        unit = "" if m.unit in ("", "1") or m.unit.startswith("{") else f" ({m.unit})"
        # Sums: the last (cumulative) value; histograms and summaries: observations.
        if m.type == "sum":
            last = value(m.last, m.unit)
        elif m.type in OBSERVED and m.count is not None:
            last = fmt.count(m.count)
        else:
            last = "–"
        return {
            "name": safe(m.name + unit, width=200),
            "type": Text(TYPE_TAGS.get(m.type, m.type), end=""),
            "service": safe(m.service, width=200),
            "attributes": safe(attributes, width=200),
            "figures": safe(figures(m), width=200),
            "count": Text(last, justify="right", end="", no_wrap=True, overflow="ellipsis"),
            "trend": Text(fmt.sparkline(trend, TREND_MINUTES), end=""),
        }

    def show_info(self) -> None:
        info = Text("Metrics ", end="")
        n = len(self.data.series) if self.data else 0
        info.append(f"{n} series" if n else "none yet")
        info.append(f"   window {format_duration(self.window_s)} (w)")
        info.append("   ")
        info.append("⏸ PAUSED" if self.agenttop.paused else "● LIVE")
        self.query_one("#metrics-info", Static).update(info)

    def show_detail(self, key: str) -> None:
        m = self.table.items.get(key)
        pane = self.query_one("#metric-detail", Static)
        if m is None:
            pane.add_class("-hidden")
            return
        text = Text(end="")
        text.append_text(safe(m.name, "bold"))
        text.append_text(safe(f"  {m.type}  unit {m.unit or '–'}  service {m.service}  "
                              f"{m.points} points in the window"))
        for k, v in sorted(m.attributes.items()):
            text.append("\n  ")
            text.append_text(safe(f"{k} = {v}", width=200))
        text.append("\n")
        text.append_text(safe(figures(m)))
        if m.type == "sum":
            text.append(f"  last {value(m.last, m.unit)}")
        if m.count is not None:
            text.append(f"  count {m.count:,}")
        pane.update(text)
        pane.remove_class("-hidden")

    def palette(self) -> list[tuple[str, str, str]]:
        return [("Cycle metrics window", "1m, 5m, 15m (w)", "cycle_window")]

    def action_cycle_window(self) -> None:
        self.window_s = WINDOWS_S[(WINDOWS_S.index(self.window_s) + 1) % len(WINDOWS_S)]
        self.show_info()
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
