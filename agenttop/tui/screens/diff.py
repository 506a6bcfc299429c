"""Two traces compared (``m`` marks a trace in the trace list, ``d`` compares the selected
one with it; ``escape`` back): the text of ``agenttop diff``, with what only the marked
trace has in red and what only the other has in green."""

from __future__ import annotations

from typing import ClassVar

import apsw
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from agenttop.analysis.diff import diff_traces, render_text
from agenttop.store.transfer import trace_spans_as_stored
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.footer import Footer

_STYLE = {"-": "red", "+": "green", "=": ""}


class DiffScreen(LiveScreen):
    """Trace ``b`` against trace ``a``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="diff.back"),
    ]

    def __init__(self, a: str, b: str) -> None:
        super().__init__(id="diff")
        self.a, self.b = a, b
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="diff-scroll"):
            yield Static(Text("comparing…", style="dim"), id="diff-text")
        yield Footer()

    def collect(self) -> Job | None:
        if self.text:  # two stored traces: read once
            return None
        a, b = self.a, self.b

        def job(conn: apsw.Connection) -> str:
            spans_a, spans_b = trace_spans_as_stored(conn, [a]), trace_spans_as_stored(conn, [b])
            if not spans_a or not spans_b:
                return f"trace {(b if spans_a else a)[:8]} is no longer stored\n"
            return render_text(diff_traces(spans_a, spans_b), a[:8], b[:8])

        return job

    def apply(self, text: str) -> None:
        self.text = text
        shown = Text(end="")
        for line in text.splitlines():
            # Names and answers are untrusted: shown as text, control characters visible.
            shown.append_text(safe(line, _STYLE.get(line[:1], "")))
            shown.append("\n")
        self.query_one("#diff-text", Static).update(shown)

    def action_back(self) -> None:
        self.app.pop_screen()
