"""One trace (``enter`` on the trace list; ``escape`` back): span tree and span detail.

``/`` searches the trace's spans by name, service or attribute (read from the file: the
tree holds only its columns), ``n`` / ``N`` go to the next / previous match in tree order,
opening the lines above it; ``+`` scales the waterfall to the selected span, ``-`` back.

The refresh loop reads the trace's row each time and reloads its spans (the tree's
columns only, in start order) only when the row changed, building the tree's shape off
the UI thread (``build_model``). The selected span's detail (attributes, events, logs,
findings) is loaded by its own worker when the cursor reaches it, never before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import apsw
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Header, Input, Static, Tree

from agenttop.store import StoreError
from agenttop.store.queries import (
    SpanDetail,
    TraceRow,
    get_trace,
    matching_spans,
    span_detail,
    trace_spans,
)
from agenttop.tui import fmt
from agenttop.tui.screens.base import Job, LiveScreen
from agenttop.tui.source import NotReady
from agenttop.tui.text import safe
from agenttop.tui.trace_model import TraceModel, build_model
from agenttop.tui.widgets.banner import Banner
from agenttop.tui.widgets.footer import Footer
from agenttop.tui.widgets.span_detail import SpanDetailView
from agenttop.tui.widgets.span_tree import More, SpanTree

T = TypeVar("T")


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


class SearchDone(Message):
    """The spans matching a search, read by the search worker."""

    def __init__(self, text: str, matches: set[str], error: str | None, jump: bool) -> None:
        super().__init__()
        self.text = text
        self.jump = jump  # go to the first match (a search typed, not spans arriving)
        self.matches = matches
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
        Binding("escape", "back", "Back", id="trace.back",
                tooltip="Clear the search, else back to where you came from"),
        Binding("slash", "search", "Search", id="trace.search",
                tooltip="Search this trace's spans by name, service or attribute"),
        Binding("n", "next_match(1)", "Next match", id="trace.next_match", show=False),
        Binding("N", "next_match(-1)", "Previous match", id="trace.previous_match",
                show=False),
        Binding("plus,equals_sign", "zoom", "Zoom", id="trace.zoom",
                tooltip="Scale the waterfall to the selected span's time"),
        Binding("minus", "unzoom", "Unzoom", id="trace.unzoom", show=False),
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
        self.search_text = ""  # the search whose matches are marked ("" for none)
        self.matches: list[str] = []  # in tree order

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner(classes="banner -hidden")
        yield Static(id="trace-head")
        with Horizontal(id="trace-body"):
            with Vertical(id="tree-pane"):
                yield Input(placeholder="search spans: name, service, attribute key or value",
                            id="span-search", classes="-hidden")
                yield Static(id="search-line", classes="-hidden")
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
        if self.search_text or not self.query_one("#span-search").has_class("-hidden"):
            self._clear_search()
            return
        self.app.pop_screen()

    # --- search and zoom ----------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one("#span-search", Input)
        box.remove_class("-hidden")
        box.focus()

    @on(Input.Changed, "#span-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._search(event.value.strip())

    @on(Input.Submitted, "#span-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.input.add_class("-hidden")
        if not event.value.strip():
            self._clear_search()
        self.tree.focus()

    def _clear_search(self) -> None:
        box = self.query_one("#span-search", Input)
        with box.prevent(Input.Changed):
            box.value = ""
        box.add_class("-hidden")
        self.search_text, self.matches = "", []
        self.tree.set_matches(set())
        self._show_search()
        self.tree.focus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="search")
    def _search(self, text: str, jump: bool = True) -> None:
        if not text:
            self.post_message(SearchDone("", set(), None, jump))
            return
        trace_id = self.trace_id
        found, error = self._read(lambda conn: matching_spans(conn, trace_id, text), "spans")
        self.post_message(SearchDone(text, found or set(), error, jump))

    @on(SearchDone)
    def _search_done(self, message: SearchDone) -> None:
        if message.text != self.query_one("#span-search", Input).value.strip():
            return  # typed on since
        self.search_text = message.text
        self.matches = [key for key in self.tree.model.order() if key in message.matches]
        self.tree.set_matches(set(self.matches))
        self._show_search(message.error)
        if self.matches and message.jump:
            self._go_to_match(0)

    def action_next_match(self, step: int) -> None:
        if not self.matches:
            if self.search_text:
                self.notify(f"no span matches {self.search_text!r}", timeout=3)
            return
        self._go_to_match(step)

    def _go_to_match(self, step: int) -> None:
        """The match ``step`` away from the cursor in tree order (0: at or after it)."""
        order = self.tree.model.order()
        here = order.index(self.selected) if self.selected in order else -1
        at = {key: i for i, key in enumerate(order)}
        positions = [at[key] for key in self.matches]
        if step >= 0:
            after = [i for i, p in enumerate(positions) if p > here or (step == 0 and p == here)]
            index = after[0] if after else 0
        else:
            before = [i for i, p in enumerate(positions) if p < here]
            index = before[-1] if before else len(positions) - 1
        self.tree.reveal(self.matches[index])
        self._show_search(position=index + 1)

    def _show_search(self, error: str | None = None, position: int | None = None) -> None:
        line = self.query_one("#search-line", Static)
        if not self.search_text:
            line.add_class("-hidden")
            return
        text = Text("search ", end="")
        text.append_text(safe(self.search_text, "bold", width=30))
        if error:
            text.append(f"  cannot search: {error}")
        elif not self.matches:
            text.append("  no span matches")
        else:
            where = f"{position} of " if position else ""
            count = len(self.matches)
            text.append(f"  {where}{count:,} match{'' if count == 1 else 'es'}"
                        "  n next  N previous  esc clear")
        line.update(text)
        line.remove_class("-hidden")

    def action_zoom(self) -> None:
        if self.selected is None:
            return
        self.tree.set_zoom(self.selected)
        self._update_ruler()

    def action_unzoom(self) -> None:
        if self.tree.zoom is not None:
            self.tree.set_zoom(None)
            self._update_ruler()

    def _update_ruler(self) -> None:
        self.query_one("#ruler", Static).update(self.tree.ruler())

    def on_resize(self) -> None:
        # After the tree has re-laid its labels out for the new width.
        self.call_after_refresh(self._update_ruler)

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
            self._update_ruler()
            if self.search_text:  # spans arrived: they may match
                self._search(self.search_text, jump=False)
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
        detail, error = self._read(lambda conn: span_detail(conn, trace_id, span_id), "span")
        self.post_message(DetailLoaded(span_id, detail, error))

    def _read(self, job: Callable[[apsw.Connection], T], what: str) -> tuple[T | None, str | None]:
        """``job``'s result from the file (in a worker thread), or None and why not."""
        try:
            return self.agenttop.source.read(job), None
        except (NotReady, StoreError) as e:
            return None, str(e)
        except Exception as e:  # a failed read must never take the UI down
            self.log.error(f"reading the {what} failed: {e!r}")
            return None, f"cannot read the {what}: {e}"

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
