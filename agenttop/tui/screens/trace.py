"""One trace (``enter`` on the trace list; ``escape`` back): span tree and span detail.

The refresh loop reads the trace's row each time and reloads its spans (the tree's
columns only, in start order) only when the row changed, building the tree's shape off
the UI thread (``build_model``). The selected span's detail (attributes, events, logs,
findings) is loaded by its own worker when the cursor reaches it, never before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import apsw
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Static, Tree

from agenttop.store import StoreError
from agenttop.store.queries import SpanDetail, TraceRow, get_trace, span_detail, trace_spans
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.source import NotReady
from agenttop.tui.text import safe
from agenttop.tui.trace_model import TraceModel, build_model
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.span_detail import SpanDetailView
from agenttop.tui.widgets.span_tree import More, SpanTree


@dataclass(frozen=True)
class TraceData:
    row: TraceRow | None  # None: no such trace (never stored, or pruned)
    model: TraceModel | None  # None: the spans did not change since the last load
    version: tuple[int, int] | None


class DetailLoaded(Message):
    """A span's detail, read by the detail worker."""

    def __init__(self, span_id: str, detail: SpanDetail | None, error: str | None) -> None:
        super().__init__()
        self.span_id = span_id
        self.detail = detail
        self.error = error


class DetailPane(VerticalScroll):
    """The span detail's scroll: j / k scroll it as the arrows do when it has focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Scroll down", show=False, id="detail.down"),
        Binding("k", "scroll_up", "Scroll up", show=False, id="detail.up"),
    ]


class TraceScreen(LiveScreen):
    """A trace's span tree with waterfall bars, and the selected span's detail."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="trace.back"),
        Binding("tab", "app.focus_next", "Next pane", id="trace.next_pane"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False,
                id="trace.previous_pane"),
    ]

    def __init__(self, trace_id: str, *, span_id: str | None = None,
                 location: str | None = None) -> None:
        super().__init__(classes="trace-screen")
        self.trace_id = trace_id
        # A jump from a finding: select this span once its tree is loaded, and mark the
        # finding's location (an attribute key, ``body``, ...) in its detail.
        self.focus_span = span_id
        self.focus_location = location
        self._pending_focus = span_id
        self.row: TraceRow | None = None
        self._version: tuple[int, int] | None = None
        self.selected: str | None = None  # the span whose detail is wanted
        self.detail_span_id: str | None = None  # the span whose detail is shown
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="trace-head")
        with Horizontal(id="trace-body"):
            with Vertical(id="tree-pane"):
                yield Static(id="ruler")
                yield SpanTree(id="span-tree")
            with DetailPane(id="detail-pane"):
                yield SpanDetailView(id="span-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#trace-head", Static).update(
            Text(f"Loading trace {self.trace_id}…", end=""))
        self.query_one(SpanDetailView).show_message("Select a span to see its detail.")
        self.query_one(SpanTree).focus()

    @property
    def tree(self) -> SpanTree:
        return self.query_one(SpanTree)

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_resize(self) -> None:
        # After the tree has re-laid its labels out for the new width.
        self.call_after_refresh(lambda: self.query_one("#ruler", Static).update(
            self.tree.ruler()))

    # --- refresh ------------------------------------------------------------------------
    def copy_target(self) -> tuple[str, str] | None:
        if self.detail_span_id is not None:
            return "span id", self.detail_span_id
        return "trace id", self.trace_id

    def collect(self) -> Job:
        trace_id, known = self.trace_id, self._version

        def job(conn: apsw.Connection) -> TraceData:
            row = get_trace(conn, trace_id)
            if row is None:
                return TraceData(None, None, None)
            version = (row.updated_ns, row.span_count)
            if version == known:
                return TraceData(row, None, version)
            return TraceData(row, build_model(trace_spans(conn, trace_id)), version)

        return job

    def apply(self, data: TraceData) -> None:
        head = self.query_one("#trace-head", Static)
        if data.row is None:
            head.update(Text(f"Trace {self.trace_id} is not in the database "
                             "(not received yet, or pruned).", end=""))
            return
        self.row = data.row
        head.update(self._head(data.row))
        if data.model is not None:
            self._version = data.version
            self.tree.show_model(data.model)
            self.query_one("#ruler", Static).update(self.tree.ruler())
            self.loaded = True
            target = self.tree._by_key.get(self._pending_focus or "")
            if target is not None:
                self._pending_focus = None
                self.tree.move_cursor(target)
            elif self.selected is not None:
                # The span may have changed (re-sent); its logs and findings may be new.
                self._load_detail(self.selected)

    def _head(self, row: TraceRow) -> Text:
        width = max(self.size.width - 2, 40)
        first = Text(end="", no_wrap=True, overflow="ellipsis")
        if row.root_name is None:
            first.append("(root not received)", style="italic")
        else:
            first.append_text(safe(row.root_name, "bold", width=width // 2))
        first.append(f"  {fmt.duration(row.duration_ns)}  {row.span_count:,} spans  ")
        first.append(f"{row.error_count} failed" if row.error_count else "no failures")
        if row.cost_usd is not None:
            first.append(f"  {fmt.usd(row.cost_usd)}")
        if row.unpriced:
            first.append(f"  ({row.unpriced} call{'s' if row.unpriced > 1 else ''} with no "
                         "price)" if row.cost_usd is not None else "  no price")
        if row.input_tokens or row.output_tokens:
            first.append(f"  {row.input_tokens:,} in / {row.output_tokens:,} out tokens")
        if row.finding_count:
            first.append(f"  ⚠ {row.finding_count} findings")
        first.truncate(width, overflow="ellipsis")
        second = safe(f"trace {row.trace_id}  started {fmt.clock(row.start_ns)}"
                      + (f"  conversation {row.session}" if row.session else "")
                      + "  services " + ", ".join(row.services)
                      + "  layers " + ", ".join(row.layers), width=width)
        return Text("\n", end="").join([first, second])

    # --- detail -------------------------------------------------------------------------
    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        key = event.node.data
        view = self.query_one(SpanDetailView)
        model = self.tree.model
        if isinstance(key, str) and key in model.spans:
            if key != self.selected:
                self.selected = key
                view.show_message("Loading…")
                self._load_detail(key)
            return
        self.selected = None
        self.detail_span_id = None
        if isinstance(key, More):
            view.show_message("More spans: press enter to load them.")
        elif isinstance(key, str) and key in model.placeholders:
            placeholder = model.placeholders[key]
            if placeholder.kind == "missing":
                text = (f"The parent span {placeholder.parent_span_id} of the spans below has "
                        "not been received yet. They are shown here as orphans and move "
                        "under their parent when it arrives.")
            else:
                text = ("The parent ids of the spans below form a cycle (a span that is its "
                        "own ancestor), so they cannot be placed under a root.")
            view.update(safe(text, multiline=True))

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail")
    def _load_detail(self, span_id: str) -> None:
        trace_id = self.trace_id
        try:
            detail = self.agenttop.source.read(
                lambda conn: span_detail(conn, trace_id, span_id))
            error = None
        except (NotReady, StoreError) as e:
            detail, error = None, str(e)
        except Exception as e:  # a failed read must never take the UI down
            self.log.error(f"span detail failed: {e!r}")
            detail, error = None, f"cannot read the span: {e}"
        self.post_message(DetailLoaded(span_id, detail, error))

    @on(DetailLoaded)
    def _show_detail(self, message: DetailLoaded) -> None:
        if message.span_id != self.selected:
            return  # the cursor has moved on
        view = self.query_one(SpanDetailView)
        if message.detail is None:
            view.show_message(message.error or "This span is no longer in the database.")
        else:
            mark = self.focus_location if message.span_id == self.focus_span else None
            view.show(message.detail, self.tree.model.start_ns or None, mark=mark)
        self.detail_span_id = message.span_id
