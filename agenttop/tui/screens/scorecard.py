"""Readiness scorecard (``r``, or the palette): the production-readiness scorecard,
filled in from the file by ``agenttop.analysis.scorecard`` (as ``agenttop scorecard``
prints it), in a modal over the current screen.

It is read once, in a thread worker, when the modal opens; ``r`` inside it reads again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from agenttop.analysis.rules import load_rules
from agenttop.analysis.scorecard import (
    MARKS,
    TITLE,
    VERDICTS,
    Scorecard,
    build_scorecard,
    observed_line,
    ready_line,
    score_line,
)
from agenttop.tui.text import clean

if TYPE_CHECKING:
    from agenttop.tui.app import AgentTopApp


class ScorecardView(Static):
    """The scorecard as tables, one per section; statuses coloured by the stylesheet."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "scorecard--pass", "scorecard--fail", "scorecard--not_observable", "scorecard--title"}

    def show(self, card: Scorecard) -> None:
        def style(name: str):
            return self.get_component_rich_style(f"scorecard--{name}", partial=True)

        title = style("title")
        parts: list = [Text(clean(f"{TITLE}: {card.application}"), style=title),
                       Text(clean(observed_line(card.observed)))]
        for section in card.sections:
            passed = sum(i.status == "pass" for i in section.items)
            parts.append(Text.assemble(
                "\n", (section.name, title),
                f"  {VERDICTS[section.verdict]} ({passed} of {section.needed} required pass)"))
            table = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False)
            table.add_column("Item", ratio=3)
            table.add_column("Status", no_wrap=True)
            table.add_column("Evidence", ratio=5)
            for item in section.items:
                table.add_row(Text(item.name), Text(MARKS[item.status], style=style(item.status)),
                              Text(clean(item.evidence)))
            parts.append(table)
        parts += [Text.assemble("\n", ("Overall score ", title), score_line(card)),
                  Text.assemble(("Ready for production? ", title), ready_line(card))]
        self.update(Group(*parts))


class ScorecardScreen(ModalScreen[None]):
    """The scorecard of the database the app watches."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close scorecard", id="scorecard.close"),
        Binding("r", "reload", "Read again", id="scorecard.reload"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="scorecard-box") as scroll:
            scroll.border_title = f"{TITLE} scorecard"
            scroll.border_subtitle = "r read again · escape to close"
            yield ScorecardView(Text("Reading the database…"), id="scorecard")

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, exit_on_error=False, group="scorecard")
    def _read(self) -> None:
        app = cast("AgentTopApp", self.app)
        rules = app.rules
        source = "shipped defaults" if rules == load_rules(None) else "--rules file"
        try:
            card = app.source.read(lambda conn: build_scorecard(conn, rules,
                                                                rules_source=source))
        except Exception as e:  # no file yet, unreadable: say it, never crash
            app.call_from_thread(self._show_problem, str(e))
            return
        app.call_from_thread(self._show, card)

    def _show(self, card: Scorecard) -> None:
        if self.is_attached:
            self.query_one(ScorecardView).show(card)

    def _show_problem(self, message: str) -> None:
        if self.is_attached:
            self.query_one(ScorecardView).update(
                Text(clean(f"Cannot read the scorecard: {message}")))
