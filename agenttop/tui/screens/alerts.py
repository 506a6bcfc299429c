"""The alerts (key ``3``): firing episodes on top, then the history of resolved ones.

Read from the ``alerts`` table as ``serve``'s evaluator left it (``alert_episodes``: the
newest ``HISTORY`` firing and resolved ones, and how many of each, through
``alerts_state``); the info line names the metric rules judging fewer series than their
metric has (``max_series``), as the receiver reports them.
``enter`` on an alert shows the traces that breached it: the trace list filtered to the
alert's layer (with errors, for failure measures) or, for a metric alert, to the service
its series names, over the alert's window (``started - window`` to resolved, or now).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Static

from agenttop.config import format_duration
from agenttop.store.alerts import AlertEpisode, alert_episodes
from agenttop.store.rows import SECOND_NS
from agenttop.tui import fmt
from agenttop.tui.receiver import part
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.screens.dashboard import _value
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable

HISTORY = 200  # firing and resolved episodes listed, each
COUNT_CAP = 10_000


class AlertTable(ListTable[AlertEpisode]):
    """Alert episodes, keyed by alert id."""

    COLUMNS = (("state", "state", 10), ("alert", "alert", 24), ("subject", "on", 22),
               ("value", "value vs limit", 16), ("started", "started", 17),
               ("ended", "resolved", 8), ("duration", "for", 6), ("message", "message", 0))
    FLEX = "message"
    HIDE = ("subject", "started", "ended", "duration")
    SORT: ClassVar = {"value": lambda a: a.value, "started": lambda a: a.started_ns,
                      "ended": lambda a: a.resolved_ns,
                      "duration": lambda a: (a.resolved_ns or a.updated_ns) - a.started_ns}
    ASCENDING = frozenset({"state", "alert", "subject", "message"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Breaching traces", id="alerts.traces",
                tooltip="The traces of the alert's layer or service in its window"),
    ]


def count(n: int) -> str:
    return f"{n:,}+" if n >= COUNT_CAP else f"{n:,}"


def distinct_names(alerts: list[AlertEpisode]) -> dict[int, str]:
    """How each alert reads in the list: a metric alert by its rule and only the labels
    whose values differ among that rule's alerts (``output-quality{route=r17}``, not a
    shared ``output-quality{service=quality,…`` prefix); a label every one of them shares
    is left out. Keyed by alert id."""
    values: dict[str, dict[str, set[str]]] = {}
    for alert in alerts:
        for key, value in alert.key.labels or ():
            values.setdefault(alert.key.rule, {}).setdefault(key, set()).add(value)
    names = {}
    for alert in alerts:
        labels = alert.key.labels
        varying = values.get(alert.key.rule, {})
        shown = [(k, v) for k, v in labels or () if len(varying.get(k, ())) > 1]
        if labels is None or not shown:
            names[alert.alert_id] = str(alert.key)
        else:
            names[alert.alert_id] = (alert.key.rule + "{" + ",".join(f"{k}={v}" for k, v in
                                                                  shown) + "}")
    return names


@dataclass(frozen=True)
class AlertsData:
    now_ns: int
    firing: list[AlertEpisode]
    resolved: list[AlertEpisode]
    firing_total: int  # counted up to COUNT_CAP
    resolved_total: int
    capped: list[dict]  # metric rules judging fewer series than they have (the receiver's)


def breach_filter(alert: AlertEpisode, now_ns: int) -> tuple[str, int, int | None]:
    """The trace-list filter that shows the traces behind ``alert``, and its time range:
    for a failure measure, the traces with a failed span of its layer (of its category);
    for a latency measure, those with a span of its layer slower than the threshold; for
    a metric, its series' service."""
    since = alert.started_ns - alert.window_s * SECOND_NS
    until = alert.resolved_ns
    measure = alert.measure
    if alert.layer:
        if measure in ("failure_rate", "failures"):
            return f"failed:{alert.layer}", since, until
        if measure.startswith("failures."):
            return f"failed:{alert.layer}:{measure.removeprefix('failures.')}", since, until
        if measure in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            return f"slow:{alert.layer}>{alert.threshold:g}ms", since, until
        return f"layer:{alert.layer}", since, until
    service = alert.key.service
    query = ""
    if service:
        query = f'service:"{service}"' if " " in service else f"service:{service}"
    return query, since, until


class AlertsScreen(LiveScreen):
    """Firing alerts and the history of episodes."""

    def __init__(self) -> None:
        super().__init__(id="alerts-screen")
        self.now_ns = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="alerts-info")
        yield AlertTable(id="alerts-table", cursor_type="row")
        yield Static(id="alert-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.query_one("#alerts-info", Static).update(Text("Alerts: loading…", end=""))

    @property
    def table(self) -> AlertTable:
        return self.query_one("#alerts-table", AlertTable)

    def copy_target(self) -> tuple[str, str] | None:
        alert = self.table.selected_item()
        return ("alert", f"{alert.key}: {alert.message}") if alert is not None else None

    # --- refresh ------------------------------------------------------------------------
    def collect(self) -> Job:
        now_ns = self.agenttop.now_ns()

        receiver = self.agenttop.receiver
        capped = [c for c in part(receiver.status if receiver else None, "alerts")
                  .get("capped", []) if isinstance(c, dict)]

        def job(conn: apsw.Connection) -> AlertsData:
            firing, resolved, firing_total, resolved_total = alert_episodes(
                conn, limit=HISTORY, cap=COUNT_CAP)
            return AlertsData(now_ns, firing, resolved, firing_total, resolved_total, capped)

        return job

    def apply(self, data: AlertsData) -> None:
        self.now_ns = data.now_ns
        info = Text(end="")
        info.append(f"● {count(data.firing_total)} firing",
                    style="bold" if data.firing else "")
        if len(data.firing) < data.firing_total:
            info.append(f" (newest {len(data.firing):,} shown)")
        info.append(f"   {count(data.resolved_total)} resolved")
        if len(data.resolved) < data.resolved_total:
            info.append(f" (newest {len(data.resolved):,} shown)")
        info.append("   enter: the traces that breached")
        for c in data.capped:  # as the receiver reported them: untrusted
            info.append("\n")
            info.append_text(safe(
                f"rule {c.get('rule')} judges the {c.get('judged')} most recently active of "
                f"{c.get('series')} series of its metric (max_series)", "yellow", width=120))
        self.query_one("#alerts-info", Static).update(info)
        alerts = data.firing + data.resolved
        names = distinct_names(alerts)
        self.table.show_rows(alerts, lambda alert: str(alert.alert_id),
                             lambda alert: self._cells(alert, names[alert.alert_id],
                                                       data.now_ns))
        self._show_detail()

    @on(DataTable.RowHighlighted, "#alerts-table")
    def _show_detail(self) -> None:
        """The highlighted alert's whole message, which its column can only begin."""
        alert = self.table.selected_item()
        detail = Text(end="")
        if alert is not None:
            detail.append_text(safe(str(alert.key), "bold", width=60))
            detail.append(f"  {alert.state}  window {format_duration(alert.window_s)}  ")
            detail.append_text(safe(alert.layer or alert.metric or "", width=40))
            detail.append("\n")
            detail.append_text(safe(alert.message, width=(self.size.width or 120) * 2 - 4))
        self.query_one("#alert-detail", Static).update(detail)

    @staticmethod
    def _cells(alert: AlertEpisode, name: str, now_ns: int) -> dict[str, Text]:
        firing = alert.state == "firing"
        bad = "bold" if firing else ""
        subject = f"{alert.layer or alert.metric or ''} {alert.measure}"
        value = (f"{_value(alert.measure, alert.value)} {alert.op} "
                 f"{_value(alert.measure, alert.threshold)}")
        started = f"{fmt.clock(alert.started_ns, millis=False)}"
        if firing:
            started += f" ({fmt.ago(now_ns - alert.started_ns)} ago)"
        end = alert.resolved_ns if alert.resolved_ns is not None else now_ns
        return {
            "state": Text("● FIRING" if firing else "✓ resolved", style=bad or "dim", end=""),
            "alert": safe(name, bad, width=26),
            "subject": safe(subject, width=24),
            "value": Text(value, style=bad, end=""),
            "started": Text(started, end=""),
            "ended": Text("–" if firing else fmt.clock(alert.resolved_ns, millis=False),
                          end=""),
            "duration": Text(fmt.duration(max(0, end - alert.started_ns)), end=""),
            "message": safe(alert.message, width=120),
        }

    # --- actions ------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#alerts-table")
    async def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        alert = self.table.items.get(event.row_key.value or "")
        if alert is None:
            return
        query, since, until = breach_filter(alert, self.now_ns)
        await self.agenttop.show_traces(query, since_ns=since, until_ns=until)
