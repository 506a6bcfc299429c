"""Dashboard cards: one per layer (state, figures, sparklines) and the ingest summary."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from agenttop.analysis.health import LayerHealth
from agenttop.config import format_duration
from agenttop.tui import fmt
from agenttop.tui.health_state import LayerState
from agenttop.tui.receiver import number
from agenttop.tui.text import safe

STATE_LABELS = {"ok": "● OK", "warn": "▲ WARN", "critical": "✖ CRITICAL"}
STATE_MARKS = {"ok": "●", "warn": "▲", "critical": "✖"}  # a narrow card: the reason wins


class Card(Vertical):
    """A bordered panel of Text lines; subclasses decide the lines."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"card--label", "card--bad"}

    def style_of(self, name: str) -> Style:
        # Partial: colour and text style only. A full style would bake in the background
        # the widget had at that moment (focus tints it) and hide the cursor highlight.
        return self.get_component_rich_style(name, partial=True)

    def label(self, text: str) -> Text:
        return Text(text, style=self.style_of("card--label"), end="")

    def bad(self, text: str) -> Text:
        return Text(text, style=self.style_of("card--bad"), end="")


class LayerCard(Card):
    """One layer's health over the dashboard window, with the last 15 minutes as sparklines."""

    def __init__(self, layer: str) -> None:
        super().__init__(id=f"card-{layer}", classes="card layer-card ok")
        self.layer_name = layer
        self.border_title = layer.upper()
        self.state: LayerState | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="state")
        yield Static(classes="figures")
        yield Static(classes="spark spans")
        yield Static(classes="spark failures")

    def show(self, health: LayerHealth, state: LayerState, spans: list[int],
             failures: list[int]) -> None:
        for name in ("ok", "warn", "critical"):
            self.set_class(state.state == name, name)
        self.border_subtitle = f"{fmt.rate(health.throughput)}"
        self.state = state
        self._show_head()
        self.query_one(".figures", Static).update(self._figures(health))
        # One cell per minute, oldest first; the total says what the tallest block means.
        minutes = len(spans)
        self.query_one(".spark.spans", Static).update(Text.assemble(
            self.label("spans "), fmt.sparkline(spans, minutes),
            self.label(f" {fmt.count(sum(spans))}/{minutes}m")))
        self.query_one(".spark.failures", Static).update(Text.assemble(
            self.label("fails "), fmt.sparkline(failures, minutes),
            self.label(f" {fmt.count(sum(failures))}/{minutes}m")))

    def _show_head(self) -> None:
        """The state and why; on a narrow card (80 columns) the state's word gives way so
        that the alert's name or the reason shows whole."""
        state = self.state
        if state is None:
            return
        label, reason = STATE_LABELS[state.state], state.reason
        width = self.content_region.width
        if reason and width and len(label) + 2 + len(reason) > width:
            # "✖ auth-failures": the mark says an alert fires, the name which.
            label, reason = STATE_MARKS[state.state], reason.removeprefix("alert: ")
        head = Text(label, end="", no_wrap=True, overflow="ellipsis")
        if reason:
            head.append(" " if len(label) == 1 else "  ")
            head.append_text(safe(reason, width=40))
        self.query_one(".state", Static).update(head)

    def on_resize(self) -> None:
        self._show_head()

    def _figures(self, h: LayerHealth) -> Text:
        lines: list[Text] = []
        lines.append(Text.assemble(self.label("spans "), f"{h.spans:<9,}",
                                   self.label("p50 "), fmt.millis(h.p50_ms)))
        failed = Text.assemble(self.label("failed "))
        rate = f"{fmt.percent(h.failure_rate)} ({h.failures})"
        failed.append_text(self.bad(rate) if h.failures else Text(rate))
        failed.pad_right(max(1, 16 - failed.cell_len))
        failed.append_text(Text.assemble(self.label("p99 "), fmt.millis(h.p99_ms)))
        lines.append(failed)
        if h.by_failure:
            parts = sorted(h.by_failure.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(Text("  " + " · ".join(f"{k} {v}" for k, v in parts), end=""))
        else:
            lines.append(self.label("  no failures"))
        if self.layer_name == "prompt":
            lines.append(Text.assemble(self.label("tokens in "), fmt.count(h.input_tokens),
                                       self.label(" out "), fmt.count(h.output_tokens)))
        elif self.layer_name == "memory":
            lines.append(Text.assemble(self.label("empty retrievals "),
                                       f"{h.empty_retrievals} of {h.retrievals}"))
        else:
            lines.append(Text.assemble(self.label("max "), fmt.millis(h.max_ms)))
        return Text("\n", end="").join(lines)


def retention_lines(size: int | None, retention: dict) -> tuple[str, str | None]:
    """The database line (``42.1 MB / 100 MB``) and, when the receiver reports its
    retention (``retention``: that part of its status), the keep line (``7d · 12 pruned``)."""
    limit = number(retention.get("max_db_bytes"))
    db = fmt.size(size) + (f" / {fmt.size(limit)}" if limit > 0 else "")
    if not retention:
        return db, None
    seconds, pruned = number(retention.get("retention_s")), number(retention.get("pruned_traces"))
    keep = format_duration(seconds) if seconds > 0 else "everything"
    return db, keep + (f" · {pruned:,} pruned" if pruned > 0 else "")


class SummaryCard(Card):
    """Ingest rate, file size and retention, findings, and the ``other`` layer when it has
    spans."""

    def __init__(self) -> None:
        super().__init__(id="card-summary", classes="card summary-card")
        self.border_title = "INGEST"

    def compose(self) -> ComposeResult:
        yield Static(classes="figures")

    def show(self, *, ingest_rate: float | None, size: int | None, findings_window: int,
             findings_total: int, window_label: str, other: LayerHealth | None,
             latest_ns: int | None, retention: dict) -> None:
        db, keep = retention_lines(size, retention)
        lines = [
            Text.assemble(self.label("spans/s   "), fmt.rate(ingest_rate)),
            Text.assemble(self.label("database  "), db),
            Text.assemble(self.label("findings  "),
                          self.bad(str(findings_window)) if findings_window
                          else Text(str(findings_window)),
                          self.label(f" in {window_label} · "), f"{findings_total} total"),
            Text.assemble(self.label("latest    "), fmt.clock(latest_ns, millis=False)),
        ]
        if keep is not None:
            lines.insert(2, Text.assemble(self.label("keep      "), keep))
        if other is not None and other.spans:
            line = Text.assemble(self.label("other     "), f"{other.spans} spans · ")
            failed = f"{other.failures} failed"
            line.append_text(self.bad(failed) if other.failures else Text(failed))
            lines.append(line)
        self.query_one(".figures", Static).update(Text("\n", end="").join(lines))
