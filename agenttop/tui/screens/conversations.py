"""Conversations (key ``7``): traces grouped by session, the most recently active first,
and a conversation's transcript.

The list (a ``LiveListScreen``: ``/`` filters by session id, agent or service, ``f``
follows, ``t`` shows the conversation's traces in the trace list, ``session:ID``) reads the
``conversations`` rows the writer keeps. ``enter`` opens the transcript:
each turn (trace) with what the user said and what the agent answered, then one line per
tool call and per failure; ``enter`` on a turn opens its trace, ``escape`` goes back.
Messages come from wherever the instrumentation put them (OTel GenAI attributes,
OpenInference's flattened keys, GenAI events sent as logs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from agenttop.store.conversations import (
    ConversationRow,
    Turn,
    TurnSpan,
    conversation_turns,
    count_conversations,
    list_conversations,
)
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.screens.live_list import LiveListScreen
from agenttop.tui.text import safe
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.list_table import ListTable
from agenttop.tui.widgets.span_detail import (
    event_messages,
    flattened_messages,
    log_messages,
    message_lines,
    message_words,
)

CELL_CHARS = 200
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("last", "Last", 12),
    ("session", "Conversation", 0),
    ("turns", "Turns", 5),
    ("first", "Since", 12),
    ("agents", "Agents", 22),
    ("tokens", "Tokens", 7),
    ("cost", "Cost", 8),
    ("failed", "Failed", 6),
    ("findings", "PII", 3),
)
TEXT_CHARS = 300  # of a message in the transcript


class ConversationTable(ListTable[ConversationRow]):
    """Conversations, the most recently active first, keyed by session id."""

    COLUMNS = COLUMNS
    FLEX = "session"
    HIDE = ("first", "agents", "tokens")
    SORT: ClassVar = {"last": lambda r: r.last_ns, "turns": lambda r: r.turns,
                      "first": lambda r: r.first_ns,
                      "tokens": lambda r: r.input_tokens + r.output_tokens,
                      "cost": lambda r: r.cost_usd, "failed": lambda r: r.failed_turns,
                      "findings": lambda r: r.findings}
    ASCENDING = frozenset({"session", "agents"})
    FLEX_MIN = 16

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open transcript", id="conversations.open"),
        Binding("t", "screen.show_traces", "Its traces", id="conversations.traces",
                tooltip="The trace list filtered to this conversation's turns"),
    ]

    today_ns: int | None = None

    def cells(self, row: ConversationRow) -> dict[str, Text]:
        tokens = row.input_tokens + row.output_tokens
        return {
            "last": Text(fmt.clock(row.last_ns, today_ns=self.today_ns), end=""),
            "session": safe(row.session, width=CELL_CHARS),
            "turns": Text(str(row.turns), justify="right", end=""),
            "first": Text(fmt.clock(row.first_ns, today_ns=self.today_ns), end=""),
            "agents": safe(", ".join(row.agents) or "–", width=CELL_CHARS),
            "tokens": Text(fmt.count(tokens) if tokens else "–", justify="right", end=""),
            "cost": Text(fmt.usd(row.cost_usd, row.unpriced, "*"), justify="right", end=""),
            "failed": Text(str(row.failed_turns) if row.failed_turns else "·",
                           justify="right", end=""),
            "findings": Text(f"⚠{row.findings}" if row.findings else "", end=""),
        }


@dataclass(frozen=True)
class ConversationsData:
    rows: list[ConversationRow]
    total: int
    now_ns: int


class ConversationsScreen(LiveListScreen):
    """The live list of conversations."""

    NOUN = "Conversations"
    FILTER_ID = "conversation-filter"
    INFO_ID = "conversations-info"
    TABLE_ID = "conversation-table"

    def __init__(self) -> None:
        super().__init__(id="conversations")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Input(placeholder="filter: words in the conversation id, agents or services",
                    id=self.FILTER_ID, classes="-hidden")
        yield Static(id=self.INFO_ID)
        yield ConversationTable(id=self.TABLE_ID)
        yield Footer()

    @property
    def table(self) -> ConversationTable:
        return self.query_one(ConversationTable)

    def copy_target(self) -> tuple[str, str] | None:
        row = self.table.selected_item()
        return ("session id", row.session) if row is not None else None

    def collect(self) -> Job:
        text, limit, cap = self.filter, self.limit, self.COUNT_CAP
        now_ns = self.agenttop.now_ns()

        def job(conn: apsw.Connection) -> ConversationsData:
            return ConversationsData(list_conversations(conn, text, limit=limit),
                                     count_conversations(conn, text, cap=cap), now_ns)

        return job

    def apply(self, data: ConversationsData) -> None:
        self.table.today_ns = data.now_ns
        self.table.show_rows(data.rows, lambda row: row.session, self.table.cells,
                             follow=self.follow)
        self.shown_rows(len(data.rows), data.total)

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(TranscriptScreen(event.row_key.value))

    async def action_show_traces(self) -> None:
        table = self.table
        if table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            if key is not None and not any(c.isspace() or c == '"' for c in key):
                await self.agenttop.show_traces(f"session:{key}")


# --- the transcript -------------------------------------------------------------------------

def _said(span: TurnSpan, side: str) -> list[tuple[str, str]]:
    """The (role, words) of a span's input or output messages, on one line each."""
    attrs = span.messages
    if span.is_log:
        lines = log_messages(span.name, attrs.get("body") or event_messages(attrs)) or []
    elif f"gen_ai.{side}.messages" in attrs:
        lines = message_lines(attrs[f"gen_ai.{side}.messages"]) or []
    else:
        flat = flattened_messages(attrs).get(f"llm.{side}_messages")
        lines = (message_lines(flat[0]) or []) if flat else []
    # The finish reason is for the span detail; a transcript shows the words.
    return [(role, " ".join(message_words(content))) for role, content in lines]


@dataclass(frozen=True)
class TurnSummary:
    user: str | None  # what the user said last before the turn's first model call
    answer: str | None  # the last words an assistant said in the turn
    tools: list[tuple[str, str | None]]  # (tool, failure)
    failures: list[tuple[str, str]]  # (span name, failure) of what failed, tools aside


def summarise(turn: Turn) -> TurnSummary:
    user = answer = None
    for span in turn.spans:
        if user is None:
            asked = [c for r, c in _said(span, "input") if r == "user"]
            if asked:
                user = asked[-1]
        said = [c for r, c in _said(span, "output") if r == "assistant"]
        if span.is_log and not said:  # an event carries either side
            said = [c for r, c in _said(span, "input") if r == "assistant"]
        words = [c for c in said if c and not c.startswith("→")]
        if words:
            answer = words[-1]
    tools = [(s.tool or s.name, s.failure) for s in turn.spans
             if s.layer == "tool" and not s.is_log]
    failures = [(s.name, s.failure) for s in turn.spans
                if s.failure is not None and s.layer != "tool" and not s.is_log]
    return TurnSummary(user, answer, tools, failures)


def turn_text(n: int, turn: Turn) -> Text:
    s = summarise(turn)
    head = Text(f"Turn {n}  ", style="bold", end="")
    head.append(f"{fmt.clock(turn.start_ns)}  {fmt.duration(turn.duration_ns)}", style="dim")
    if turn.cost_usd is not None:
        head.append(f"  {fmt.usd(turn.cost_usd)}", style="dim")
    if turn.root_name:
        head.append("  ")
        head.append_text(safe(turn.root_name, "dim", width=60))
    lines = [head]
    for role, words in (("user", s.user), ("agent", s.answer)):
        line = Text(f"  {role}: ", style="bold", end="")
        line.append_text(safe(words, width=TEXT_CHARS) if words is not None
                         else Text("(not recorded)", style="dim"))
        lines.append(line)
    for tool, failure in s.tools:
        line = Text("  ✗ tool " if failure else "  ✓ tool ", end="",
                    style="red" if failure else "green")
        line.append_text(safe(tool, width=60))
        if failure:
            line.append(f"  {failure}", style="red")
        lines.append(line)
    for name, failure in s.failures:
        line = Text("  ✗ ", style="red", end="")
        line.append_text(safe(name, width=60))
        line.append(f"  {failure}", style="red")
        lines.append(line)
    return Text("\n", end="").join(lines)


class TranscriptScreen(LiveScreen):
    """One conversation, turn by turn."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="transcript.back"),
    ]

    def __init__(self, session: str) -> None:
        super().__init__(id="transcript")
        self.session = session
        self.turns: list[Turn] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="transcript-head")
        yield OptionList(id="turns")
        yield Footer()

    def on_mount(self) -> None:
        head = Text("Conversation ", end="")
        head.append_text(safe(self.session, "bold", width=120))
        head.append("   loading…", style="dim")
        self.query_one("#transcript-head", Static).update(head)

    def collect(self) -> Job:
        session = self.session

        def job(conn: apsw.Connection) -> list[Turn]:
            return conversation_turns(conn, session)

        return job

    def apply(self, turns: list[Turn]) -> None:
        if [(t.trace_id, len(t.spans), t.duration_ns) for t in turns] == [
                (t.trace_id, len(t.spans), t.duration_ns) for t in self.turns]:
            return  # nothing new: keep the cursor where it is
        self.turns = turns
        head = Text("Conversation ", end="")
        head.append_text(safe(self.session, "bold", width=120))
        head.append(f"   {len(turns)} turns   enter opens a turn's trace", style="dim")
        self.query_one("#transcript-head", Static).update(head)
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(turn_text(i + 1, t), id=t.trace_id)
                             for i, t in enumerate(turns)])
        if turns:
            options.highlighted = min(highlighted or 0, len(turns) - 1)
        options.focus()

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.agenttop.open_trace(event.option.id)
