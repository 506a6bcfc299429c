"""The dashboard (key ``1``): five layer cards, the ingest summary, the receiver (where it
listens, its forwarding, refused calls), what model calls cost, and the firing alerts.

Figures come from ``layer_health`` (the writer's per-minute rollups, a few ms on a
million spans), sparklines from ``layer_minutes``, alerts from the ``alerts`` table as
``serve``'s evaluator left them. ``w`` cycles the window the cards judge (1m, 5m, 15m).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Header, Static

from agenttop.analysis.health import LayerHealth, layer_health
from agenttop.config import format_duration
from agenttop.store.alerts import AlertEpisode, load_firing
from agenttop.store.audit import refused_by_reason
from agenttop.store.queries import (
    count_findings,
    latest_data_ns,
)
from agenttop.store.rollups import Spend, minute_series, spend
from agenttop.store.rows import SECOND_NS
from agenttop.store.series import CARDINALITY_LIMIT, NameCardinality, names_over
from agenttop.tui import fmt
from agenttop.tui.health_state import layer_state
from agenttop.tui.preferences import preferred_window_s
from agenttop.tui.receiver import part
from agenttop.tui.screens.base import Job, LiveScreen, next_window, window_tabs
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.cards import LayerCard, SummaryCard
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.receiver_line import ReceiverLine

CARD_LAYERS = ("prompt", "tool", "memory", "runtime", "auth")
SPARK_MINUTES = 15


@dataclass(frozen=True)
class DashboardData:
    window_s: int
    now_ns: int
    health: dict[tuple[str, int], LayerHealth]
    minutes: dict[str, tuple[list[int], list[int]]]
    firing: list[AlertEpisode]
    findings_window: int
    findings_total: int
    latest_ns: int | None
    refused: dict[str, int]  # refused calls in the window, by reason
    spend: Spend
    crowded: list[NameCardinality]  # metrics with more than CARDINALITY_LIMIT series


def _value(measure: str, value: float | None) -> str:
    if value is None:
        return "–"
    if measure.endswith("_rate"):
        return fmt.percent(value)
    if measure.endswith("_ms"):
        return fmt.millis(value)
    return f"{value:.4g}"


def read_dashboard(conn: apsw.Connection, now_ns: int, window_s: int) -> DashboardData:
    """Everything the dashboard shows from the file, over the window ending at now."""
    return DashboardData(
        window_s=window_s,
        now_ns=now_ns,
        health=layer_health(conn, now_ns, [window_s]),
        minutes=minute_series(conn, now_ns, SPARK_MINUTES),
        firing=load_firing(conn),
        findings_window=count_findings(conn, now_ns - window_s * SECOND_NS),
        findings_total=count_findings(conn),
        latest_ns=latest_data_ns(conn),
        refused=refused_by_reason(conn, now_ns - window_s * SECOND_NS),
        spend=spend(conn, now_ns, window_s, SPARK_MINUTES),
        crowded=names_over(conn, CARDINALITY_LIMIT),
    )


def cardinality_line(crowded: list[NameCardinality]) -> Text:
    """"high cardinality: quality_0 1,000 series, … (over 1,000 series; 5 then c …)"."""
    text = Text("high cardinality: ", style="bold yellow", end="")
    names = ", ".join(f"{c.name} {c.series:,} series" for c in crowded[:3])
    more = f" and {len(crowded) - 3:,} more metrics" if len(crowded) > 3 else ""
    text.append_text(safe(names + more, width=90))
    text.append(f"  (over {CARDINALITY_LIMIT:,} series; 5 then c shows them)", style="dim")
    return text


def spend_line(s: Spend, window_label: str) -> Text:
    """"spend $1.23 in 5m · ▁▂▅ per min · gpt-4o $0.80 · my-llama no price (12 calls)"."""
    line = Text("spend  ", style="dim", end="")
    if not s.priced and not s.unpriced:
        line.append(f"no model calls in {window_label}")
        return line
    line.append(fmt.usd(s.cost_usd if s.priced else None, s.unpriced), style="bold")
    line.append(f" in {window_label}  ", style="dim")
    line.append(fmt.sparkline(s.per_minute, len(s.per_minute)))
    line.append(f" {len(s.per_minute)} min", style="dim")
    for m in s.top:
        line.append("  ·  ", style="dim")
        line.append_text(safe(m.model, width=28))
        line.append(" ")
        line.append(fmt.usd(m.cost_usd) if m.cost_usd else f"no price ({m.unpriced} calls)",
                    style="" if m.cost_usd else "dim")
    return line


class DashboardScreen(LiveScreen):
    """Per-layer health at a glance."""

    # From 44 rows the firing alerts take the lines they need, not the rest of the screen.
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"),
                                                                    (44, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "cycle_window", "Window", id="dashboard.window",
                tooltip="Cycle the health window: 1m, 5m, 15m"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.window_s = preferred_window_s(self)
        self.data: DashboardData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="dash-head")
        with Grid(id="cards"):
            for layer in CARD_LAYERS:
                yield LayerCard(layer)
            yield SummaryCard()
        yield ReceiverLine(id="receiver-line")
        yield Static(id="spend-line")
        yield Static(id="cardinality-line", classes="-hidden")
        yield Static(id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts", Static).border_title = "FIRING ALERTS"
        self._show_head(None)

    def palette(self) -> list[tuple[str, str, str]]:
        return [("Cycle health window", "1m, 5m, 15m (w)", "cycle_window")]

    def action_cycle_window(self) -> None:
        self.action_set_window(next_window(self.window_s))

    def action_set_window(self, seconds: int) -> None:
        self.window_s = seconds
        self._show_head(None)
        self.invalidate()

    def collect(self) -> Job:
        window_s, now_ns = self.window_s, self.agenttop.now_ns()
        return lambda conn: read_dashboard(conn, now_ns, window_s)

    def _show_head(self, now_ns: int | None) -> None:
        head = window_tabs(self.window_s)
        head.append("  (w or a click to change)")
        if now_ns is not None:
            head.append(f"   ·   now {fmt.clock(now_ns, millis=False)}")
        self.query_one("#dash-head", Static).update(head)

    def apply(self, data: DashboardData) -> None:
        self.data = data
        self._show_head(data.now_ns)
        rules = self.agenttop.rules
        zeros = [0] * SPARK_MINUTES
        for layer in CARD_LAYERS:
            health = data.health[(layer, data.window_s)]
            firing = [str(a.key) for a in data.firing if a.layer == layer]
            spans, failures = data.minutes.get(layer, (zeros, zeros))
            self.query_one(f"#card-{layer}", LayerCard).show(
                health, layer_state(health, rules, firing), spans, failures)
        self.query_one("#spend-line", Static).update(
            spend_line(data.spend, format_duration(data.window_s)))
        line = self.query_one("#cardinality-line", Static)
        line.set_class(not data.crowded, "-hidden")
        if data.crowded:
            line.update(cardinality_line(data.crowded))
        self._show_live(data)

    def tick(self, now_ns: int) -> None:
        # Idle, nothing is read again; the clock, the ingest rate and the receiver's state
        # still move.
        if self.data is not None:
            self._show_head(now_ns)
            self._show_live(self.data)

    def _show_live(self, data: DashboardData) -> None:
        """What comes from the app's status read, not from this screen's data."""
        receiver = self.agenttop.receiver
        self.query_one(SummaryCard).show(
            ingest_rate=self.agenttop.ingest_rate, size=self.agenttop.db_size,
            findings_window=data.findings_window, findings_total=data.findings_total,
            window_label=format_duration(data.window_s),
            other=data.health.get(("other", data.window_s)), latest_ns=data.latest_ns,
            retention=part(receiver.status if receiver else None, "retention"))
        self.query_one(ReceiverLine).show(receiver, data.refused,
                                          format_duration(data.window_s))
        self._show_alerts(data)  # pending alerts are the receiver's

    def _show_alerts(self, data: DashboardData) -> None:
        panel = self.query_one("#alerts", Static)
        receiver = self.agenttop.receiver
        pending = [p for p in part(receiver.status if receiver else None, "alerts")
                   .get("pending", []) if isinstance(p, dict)]
        title = f"FIRING ALERTS ({len(data.firing)})"
        panel.border_title = title + (f" · PENDING ({len(pending)})" if pending else "")
        panel.set_class(bool(data.firing), "-firing")
        if not data.firing and not pending:
            panel.update(Text("No alerts firing.", end=""))
            return
        lines = []
        for alert in data.firing:
            line = Text("● ", end="")
            line.append_text(safe(str(alert.key), width=32))
            line.pad_right(max(0, 34 - line.cell_len))
            subject = alert.layer or alert.metric or ""
            line.append_text(safe(f"{subject} {alert.measure}", width=28))
            line.pad_right(max(0, 64 - line.cell_len))
            line.append(f"{_value(alert.measure, alert.value)} {alert.op} "
                        f"{_value(alert.measure, alert.threshold)}")
            line.pad_right(max(0, 84 - line.cell_len))
            line.append(f"since {fmt.clock(alert.started_ns, millis=False)} "
                        f"({fmt.ago(data.now_ns - alert.started_ns)} ago)")
            lines.append(line)
        for p in pending:  # as the receiver reported them: untrusted text
            line = Text("◐ ", style="dim", end="")
            line.append_text(safe(str(p.get("key", "")), width=32))
            line.pad_right(max(0, 34 - line.cell_len))
            since, wait = p.get("since_ns"), p.get("for_s")
            if isinstance(since, int) and isinstance(wait, int):
                line.append(f"pending {fmt.ago(data.now_ns - since)} of "
                            f"{format_duration(wait)}  ", style="dim")
            line.append_text(safe(str(p.get("message", "")), width=80))
            lines.append(line)
        panel.update(Text("\n", end="").join(lines))
