"""Agents (key ``8``): which agent, which tool, which model, over a window.

Three tables read from the writer's per-minute call rollups (``agenttop.store.calls``):
agents (runs, failure rate, p50 / p99 run latency, the tokens and cost of their own model
calls, tool calls per run), tools (calls, failures by category, p50 / p99, the agents
calling them) and models (calls, tokens by kind, cost, p50 / p99, time to first token
where sent, rate limits). ``w`` cycles the window (1m, 5m, 15m, 1h); ``s`` sorts the
focused table by its next column and ``S`` reverses it (a click on a header sorts by that
column); ``tab`` moves between tables; ``enter`` opens the traces the row covers (the
trace list filtered by ``agent:``, ``tool:`` or ``model:`` from the window's start). The
calls pane shows what the selected agent calls, sub-agents unfolded: the agent graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Static, Tree

from agenttop.analysis.buckets import quantile_ns
from agenttop.store.calls import CallsWindow, Edge, Subject, calls_window, durations
from agenttop.store.queries import exact_token
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.tui import fmt
from agenttop.tui.preferences import preferred_window_s
from agenttop.tui.screens.base import Job, LiveScreen, next_window, window_tabs
from agenttop.tui.text import safe
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable, sort_items

WINDOWS_S = (60, 300, 900, 3600)
CELL_CHARS = 120
GRAPH_DEPTH = 4  # sub-agents unfolded in the calls pane


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a table: its subject and the values it shows and sorts by."""

    subject: Subject
    values: dict[str, Any]


def _rate(failures: int, calls: int) -> float:
    return failures / calls if calls else 0.0


_LATENCY = {"p50": None, "p99": None}  # filled in for the rows on screen (``table_rows``)


def agent_rows(w: CallsWindow) -> list[Row]:
    rows = []
    for s in w.of_kind("agent"):
        models, tools = w.made_by(s.subject.name, "model"), w.made_by(s.subject.name, "tool")
        rows.append(Row(s.subject, {
            "name": s.subject.name, "runs": s.calls, "fail": _rate(s.failures, s.calls),
            **_LATENCY,
            "tokens": sum(e.tokens.get("input", 0) + e.tokens.get("output", 0)
                          for e in models),
            "cost": sum(e.cost_usd for e in models),
            "unpriced": sum(e.unpriced for e in models),
            "tools": sum(e.calls for e in tools) / s.calls if s.calls else 0.0}))
    return rows


def tool_rows(w: CallsWindow) -> list[Row]:
    return [Row(s.subject, {
        "name": s.subject.name, "calls": s.calls, "fail": _rate(s.failures, s.calls),
        "by": ", ".join(f"{c} {n}" for c, n in sorted(s.by_failure.items(),
                                                      key=lambda i: -i[1])),
        **_LATENCY,
        "agents": ", ".join(a for a, _ in s.callers.most_common() if a)})
        for s in w.of_kind("tool")]


def model_rows(w: CallsWindow) -> list[Row]:
    return [Row(s.subject, {
        "name": f"{s.subject.provider}/{s.subject.name}" if s.subject.provider
        else s.subject.name,
        "calls": s.calls, "fail": _rate(s.failures, s.calls),
        "input": s.tokens.get("input", 0), "output": s.tokens.get("output", 0),
        "cache": s.tokens.get("cache_read", 0) + s.tokens.get("cache_write", 0),
        "reasoning": s.tokens.get("reasoning", 0), "cost": s.cost_usd,
        "unpriced": s.unpriced, **_LATENCY,
        "ttft": s.ttft_sum_s / s.ttft_count if s.ttft_count else None,
        "limits": s.by_failure.get("rate_limit", 0)})
        for s in w.of_kind("model")]


ROWS_OF = {"agent": agent_rows, "tool": tool_rows, "model": model_rows}
SORTED_ROWS_MARGIN = 5  # rows below the visible ones whose latencies are read too


@dataclass(frozen=True, slots=True)
class TableView:
    """What a table shows: its sort, and how many rows from the top reach the screen."""

    column: str
    descending: bool
    rows: int


def sorted_rows(rows: list[Row], column: str, descending: bool) -> list[Row]:
    """``rows`` by ``column`` (missing values last either way), names A to Z among
    equals."""
    by_name = sorted(rows, key=lambda row: row.values["name"])
    return sort_items(by_name, lambda row: row.values[column], descending)


def table_rows(conn: apsw.Connection, first_minute: int, last_minute: int,
               views: dict[str, TableView]) -> tuple[CallsWindow, dict[str, list[Row]]]:
    """One refresh: the window's rows of each table, with p50 / p99 read only for the rows
    the screen shows in its order (all of them when a table sorts by latency)."""
    w = calls_window(conn, first_minute, last_minute)
    out: dict[str, list[Row]] = {}
    for kind, view in views.items():
        rows = out[kind] = ROWS_OF[kind](w)
        shown = rows if view.column in _LATENCY else \
            sorted_rows(rows, view.column, view.descending)[:view.rows]
        histograms = durations(conn, first_minute, last_minute,
                               [row.subject for row in shown])
        for row in shown:
            row.values["p50"] = quantile_ns(histograms[row.subject], 0.5)
            row.values["p99"] = quantile_ns(histograms[row.subject], 0.99)
    return w, out


def _num(text: str) -> Text:
    return Text(text, justify="right", end="")


def _ms(ns: float | None) -> Text:
    return _num(fmt.duration(ns) if ns is not None else "–")


def _tokens(n: int) -> Text:
    return _num(fmt.count(n) if n else "–")


def _fail(rate: float) -> Text:
    return Text(fmt.percent(rate) if rate else "·", justify="right", end="",
                style="bold red" if rate else "dim")


def _cost(values: dict[str, Any]) -> Text:
    return _num(fmt.usd(values["cost"] or None, values["unpriced"], "*"))


class SubjectTable(ListTable[Row]):
    """A sortable table of agents, tools or models; ``CELLS`` formats a row's values."""

    KIND: ClassVar[str] = ""
    FILTER_KEY: ClassVar[str] = ""  # the trace filter matching a row exactly
    CELLS: ClassVar[dict[str, Callable[[dict[str, Any]], Text]]] = {}
    FLEX_MIN = 10

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Its traces", id="agents.traces",
                tooltip="The trace list filtered to the traces this row covers"),
    ]
    ASCENDING = frozenset({"name"})  # names A to Z, figures biggest first

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.COLUMNS:
            cls.SORT = {key: (lambda row, key=key: row.values[key]) for key, _, _ in cls.COLUMNS}
            cls.DEFAULT_SORT = cls.COLUMNS[1][0]  # the first figure: runs or calls

    def show(self, rows: list[Row]) -> None:
        # Names A to Z among rows the sort column ties (the sort is stable).
        self.show_rows(sorted(rows, key=lambda row: row.values["name"]),
                       lambda row: "\x1f".join(row.subject), self.cells)

    @property
    def view(self) -> TableView:
        return TableView(self.sort_column or self.COLUMNS[1][0], self.descending,
                         self.scroll_offset.y + self.size.height + SORTED_ROWS_MARGIN)

    def cells(self, row: Row) -> dict[str, Text]:
        return {column: self.CELLS[column](row.values) for column, _, _ in self.COLUMNS}

    def on_list_table_sorted(self, event: ListTable.Sorted) -> None:
        # Latencies are read for the rows on screen: another order shows others.
        self.screen.invalidate()  # type: ignore[attr-defined]


class AgentTable(SubjectTable):
    KIND, FILTER_KEY, FLEX = "agent", "agent", "name"
    HIDE = ("tools", "tokens", "p50", "cost")
    # Each column has room for its label and the sort arrow.
    COLUMNS = (("name", "Agent", 0), ("runs", "Runs", 5), ("fail", "Fail", 5),
               ("p50", "p50", 6), ("p99", "p99", 6), ("tokens", "Tokens", 7),
               ("cost", "Cost", 8), ("tools", "Tools/run", 10))
    CELLS: ClassVar = {
        "name": lambda v: safe(v["name"], width=CELL_CHARS),
        "runs": lambda v: _num(fmt.count(v["runs"])), "fail": lambda v: _fail(v["fail"]),
        "p50": lambda v: _ms(v["p50"]), "p99": lambda v: _ms(v["p99"]),
        "tokens": lambda v: _tokens(v["tokens"]), "cost": _cost,
        "tools": lambda v: _num(f"{v['tools']:.1f}" if v["tools"] else "·"),
    }


class ToolTable(SubjectTable):
    KIND, FILTER_KEY, FLEX = "tool", "tool", "name"
    HIDE = ("agents", "by", "p50")
    COLUMNS = (("name", "Tool", 0), ("calls", "Calls", 6), ("fail", "Fail", 5),
               ("by", "Failures", 22), ("p50", "p50", 6), ("p99", "p99", 6),
               ("agents", "Called by", 28))
    CELLS: ClassVar = {
        "name": lambda v: safe(v["name"], width=CELL_CHARS),
        "calls": lambda v: _num(fmt.count(v["calls"])), "fail": lambda v: _fail(v["fail"]),
        "by": lambda v: safe(v["by"] or "·", width=CELL_CHARS),
        "p50": lambda v: _ms(v["p50"]), "p99": lambda v: _ms(v["p99"]),
        "agents": lambda v: safe(v["agents"] or "–", width=CELL_CHARS),
    }


class ModelTable(SubjectTable):
    KIND, FILTER_KEY, FLEX = "model", "model", "name"
    HIDE = ("reasoning", "cache", "ttft", "limits", "p50", "output")
    COLUMNS = (("name", "Model", 0), ("calls", "Calls", 6), ("fail", "Fail", 5),
               ("input", "In", 6), ("output", "Out", 6), ("cache", "Cache", 6),
               ("reasoning", "Reason", 7), ("cost", "Cost", 8), ("p50", "p50", 6),
               ("p99", "p99", 6), ("ttft", "TTFT", 6), ("limits", "429s", 5))
    CELLS: ClassVar = {
        "name": lambda v: safe(v["name"], width=CELL_CHARS),
        "calls": lambda v: _num(fmt.count(v["calls"])), "fail": lambda v: _fail(v["fail"]),
        "input": lambda v: _tokens(v["input"]), "output": lambda v: _tokens(v["output"]),
        "cache": lambda v: _tokens(v["cache"]), "reasoning": lambda v: _tokens(v["reasoning"]),
        "cost": _cost, "p50": lambda v: _ms(v["p50"]), "p99": lambda v: _ms(v["p99"]),
        "ttft": lambda v: _ms(None if v["ttft"] is None else v["ttft"] * SECOND_NS),
        "limits": lambda v: _num(str(v["limits"]) if v["limits"] else "·"),
    }


def edge_label(e: Edge) -> Text:
    """``tool web_search ×12 25% failed``: kind, name (a model without its provider, which
    the models table shows), calls, failure rate, cost."""
    label = Text(f"{e.callee.kind} ", style="dim", end="")
    label.append_text(safe(e.callee.name, width=60))
    label.append(f" ×{fmt.count(e.calls)}")
    if e.failures:
        label.append(f" {fmt.percent(e.failures / e.calls)} failed", style="bold red")
    if e.callee.kind == "model" and (e.cost_usd or e.unpriced):
        label.append(f" {fmt.usd(e.cost_usd or None, e.unpriced, '*')}", style="dim")
    return label


_KIND_ORDER = {"agent": 0, "tool": 1, "model": 2}


def add_calls(node: Any, w: CallsWindow, agent: str, path: tuple[str, ...]) -> None:
    """Add what ``agent`` calls under ``node``: sub-agents (unfolded, not back into an
    agent already on the path), then tools, then models, most calls first."""
    edges = sorted(w.edges.get(agent, ()), key=lambda e: (_KIND_ORDER[e.callee.kind],
                                                         -e.calls, e.callee.name))
    for e in edges:
        name = e.callee.name
        if e.callee.kind == "agent" and name not in path and len(path) < GRAPH_DEPTH \
                and w.edges.get(name):
            child = node.add(edge_label(e), expand=True)
            add_calls(child, w, name, (*path, name))
        else:
            node.add_leaf(edge_label(e))


@dataclass(frozen=True)
class AgentsData:
    window: CallsWindow
    rows: dict[str, list[Row]]  # by kind
    first_minute: int


class AgentsScreen(LiveScreen):
    """Agents, tools and models over a window, and the selected agent's calls."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "cycle_window", "Window", id="agents.window",
                tooltip="Cycle the window: 1m, 5m, 15m, 1h"),
    ]

    def __init__(self) -> None:
        super().__init__(id="agents")
        self.window_s = preferred_window_s(self)
        self.data: AgentsData | None = None
        self.graph_of: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="agents-head")
        with Horizontal(id="agents-top"):
            yield AgentTable(id="agent-table")
            calls = Tree(Text("calls"), id="agent-calls")
            calls.can_focus = False  # a view of the selected agent: tab goes table to table
            yield calls
        yield ToolTable(id="tool-table")
        yield ModelTable(id="model-table")
        yield Footer()

    def on_mount(self) -> None:
        for table, title in ((AgentTable, "AGENTS"), (ToolTable, "TOOLS"),
                             (ModelTable, "MODELS")):
            self.query_one(table).border_title = title
        tree = self.query_one("#agent-calls", Tree)
        tree.border_title = "CALLS"
        tree.show_root = True
        self._show_head()

    def palette(self) -> list[tuple[str, str, str]]:
        return [("Cycle agents window", "1m, 5m, 15m, 1h (w)", "cycle_window")]

    def action_cycle_window(self) -> None:
        self.action_set_window(next_window(self.window_s, WINDOWS_S))

    def action_set_window(self, seconds: int) -> None:
        self.window_s = seconds
        self._show_head()
        self.invalidate()

    def _show_head(self) -> None:
        head = window_tabs(self.window_s, WINDOWS_S)
        head.append("  (w window · s sort · S reverse · tab next table · enter traces)",
                    style="dim")
        if self.data is not None and not self.data.window.stats:
            head.append("\nNo agent runs, tool calls or model calls in this window.")
        self.query_one("#agents-head", Static).update(head)

    def tables(self) -> list[SubjectTable]:
        return [self.query_one(cls) for cls in (AgentTable, ToolTable, ModelTable)]

    def copy_target(self) -> tuple[str, str] | None:
        table = self.focused if isinstance(self.focused, SubjectTable) else None
        row = table.selected_item() if table is not None else None
        return (table.KIND, row.subject.name) if row is not None else None  # type: ignore[union-attr]

    def collect(self) -> Job:
        now_ns = self.agenttop.now_ns()
        first = (now_ns - self.window_s * SECOND_NS) // MINUTE_NS
        views = {table.KIND: table.view for table in self.tables()}

        def job(conn: apsw.Connection) -> AgentsData:
            return AgentsData(*table_rows(conn, first, now_ns // MINUTE_NS, views), first)

        return job

    def apply(self, data: AgentsData) -> None:
        self.data = data
        self._show_head()
        for table in self.tables():
            table.show(data.rows[table.KIND])
        self._show_graph(force=True)

    @on(DataTable.RowHighlighted, "#agent-table")
    def _agent_moved(self) -> None:
        self._show_graph()

    def _show_graph(self, force: bool = False) -> None:
        row = self.query_one(AgentTable).selected_item()
        agent = row.subject.name if row is not None else None
        if self.data is None or (agent == self.graph_of and not force):
            return
        self.graph_of = agent
        tree = self.query_one("#agent-calls", Tree)
        tree.clear()
        if agent is None:
            tree.root.set_label(Text("no agent selected", style="dim"))
            return
        tree.root.set_label(safe(agent, width=60))
        add_calls(tree.root, self.data.window, agent, (agent,))
        if not tree.root.children:
            tree.root.add_leaf(Text("calls nothing in this window", style="dim"))
        tree.root.expand()

    @on(DataTable.RowSelected)
    async def _open_traces(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        if not isinstance(table, SubjectTable) or self.data is None:
            return
        row = table.selected_item()
        if row is not None:
            await self.agenttop.show_traces(
                exact_token(table.FILTER_KEY, row.subject.name),
                since_ns=self.data.first_minute * MINUTE_NS)
