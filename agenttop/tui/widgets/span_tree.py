"""The span tree of one trace, with a waterfall bar per span, built lazily.

A trace may hold tens of thousands of spans; Textual's Tree keeps a Python object per
node and re-measures every visible line when the tree changes. So nodes are created only
when they can be seen: a node's children are added when it is first expanded, at most
``CHUNK`` at a time (a "… N more" line loads the next chunk), and the first build expands
breadth-first only until ``INITIAL_LINES`` lines exist. Where each span hangs (orphans,
cycles) is decided beforehand, off the UI thread, by ``agenttop.tui.trace_model``.

When the trace changes (spans arrive), the tree is rebuilt from the new model with the
same nodes expanded and the cursor on the same span, so an orphan is adopted by its
parent in place. Labels are ``Text`` (never markup), styled through component classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from agenttop.tui import fmt
from agenttop.tui.keys import VI_KEYS
from agenttop.tui.text import fit, safe
from agenttop.tui.trace_model import TOP, TraceModel

CHUNK = 200
INITIAL_LINES = 400
EXPAND_ALL_LINES = 5_000  # Z opens at most this many lines (a trace may hold 100,000 spans)
MIN_WIDTH = 40
GUIDE_DEPTH = 2
LAYER_WIDTH = 8
DURATION_WIDTH = 8
LAYERS = ("prompt", "tool", "memory", "runtime", "auth", "other")


@dataclass(frozen=True, slots=True)
class More:
    """The "… N more" line: the next chunk of ``parent``'s children from ``offset``."""

    parent: str
    offset: int


NodeData = str | More  # a span id or placeholder key, or a "more" line


class SpanTree(Tree[NodeData]):
    """Spans as a tree with a waterfall; ``data`` of a node is its key in the model."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Expand/collapse", id="trace.toggle",
                tooltip="Expand or collapse the span; on a \"more\" line, load more spans"),
        *VI_KEYS,
        # As in otel-tui and lazygit: left collapses an open span, else goes to its parent;
        # right opens a closed one, else goes to its first child.
        Binding("left,h", "collapse_or_parent", "Collapse / parent", id="trace.collapse",
                show=False),
        Binding("right,l", "expand_or_child", "Expand / child", id="trace.expand",
                show=False),
        Binding("p", "cursor_parent", "Parent span", id="trace.parent", show=False),
        Binding("z", "collapse_all", "Collapse all", id="trace.collapse_all", show=False),
        Binding("Z", "expand_all", "Expand all", id="trace.expand_all", show=False,
                tooltip=f"Every span, up to {EXPAND_ALL_LINES:,} lines"),
        # Tree toggles nodes with space; here space pauses like everywhere else, and
        # enter toggles (Tree's auto_expand on select).
        Binding("space", "app.toggle_pause", "Pause", id="agenttop.pause"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *Tree.COMPONENT_CLASSES,
        "span-tree--failed", "span-tree--placeholder", "span-tree--dim",
        "span-tree--findings", "span-tree--match",
        *(f"span-tree--layer-{layer}" for layer in LAYERS),
    }
    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "

    def __init__(self, **kwargs: object) -> None:
        super().__init__("trace", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = GUIDE_DEPTH
        self.model = TraceModel()
        self._by_key: dict[str, TreeNode[NodeData]] = {}
        self._depth: dict[int, int] = {}  # node id -> depth below the top
        self._loaded: dict[str, int] = {}  # key -> children added so far
        self._open_keys: set[str] = set()
        self._seen: set[str] = set()
        self._styles: dict[str, Style] = {}
        self._width = 0
        # The waterfall's time range: the whole trace, or the span zoomed to (``+``).
        self.zoom: str | None = None
        self.matches: set[str] = set()  # spans matching the trace screen's search

    # --- building -----------------------------------------------------------------------
    def show_model(self, model: TraceModel) -> None:
        """Show ``model``: a new trace, or the same trace with more spans."""
        cursor = self.cursor_node.data if self.cursor_node is not None else None
        self.model = model
        if self.zoom not in model.spans:
            self.zoom = None
        self._styles = {}
        self._width = self._label_width()
        self.clear()
        self._by_key = {}
        self._depth = {self.root.id: -1}
        self._loaded = {}
        budget = INITIAL_LINES
        queue: list[tuple[TreeNode[NodeData], str]] = [(self.root, TOP)]
        self._loaded[TOP] = 0
        budget -= self._add_children(self.root, TOP)
        while queue:
            _parent, key = queue.pop(0)
            for child_key in model.kids(key)[: self._loaded.get(key, 0)]:
                node = self._by_key[child_key]
                if not model.kids(child_key):
                    continue
                want = child_key in self._open_keys or (
                    child_key not in self._seen and budget > 0)
                if want:
                    budget -= self._add_children(node, child_key)
                    node.expand()
                    self._open_keys.add(child_key)
                    queue.append((node, child_key))
        self._seen.update(self._by_key)
        target = self._by_key.get(cursor) if isinstance(cursor, str) else None
        if target is None:  # a new trace, or the line the cursor was on is gone
            target = next(iter(self._by_key.values()), None)
        # Lay the lines out now (Tree does it lazily): the cursor is a line number, and
        # the span it was on may have moved (an orphan adopted by its parent).
        self.get_node_at_line(0)
        self.move_cursor(target)

    def _add_children(self, node: TreeNode[NodeData], key: str) -> int:
        """Add the next chunk of ``key``'s children under ``node``; returns lines added."""
        kids = self.model.kids(key)
        start = self._loaded.get(key, 0)
        end = min(len(kids), start + CHUNK)
        depth = self._depth[node.id] + 1
        for child_key in kids[start:end]:
            child = node.add(self._label(child_key, depth), data=child_key,
                             allow_expand=bool(self.model.kids(child_key)))
            self._by_key[child_key] = child
            self._depth[child.id] = depth
        self._loaded[key] = end
        if end < len(kids):
            more = node.add_leaf(self._more_label(len(kids) - end), data=More(key, end))
            self._depth[more.id] = depth
        return end - start + (1 if end < len(kids) else 0)

    def load_more(self, node: TreeNode[NodeData]) -> None:
        """Replace a "… N more" line by the next chunk of its parent's children."""
        data = node.data
        parent = node.parent
        if not isinstance(data, More) or parent is None:
            return
        first_new = self.model.kids(data.parent)[data.offset]
        node.remove()
        self._add_children(parent, data.parent)
        self.get_node_at_line(0)  # lay the new lines out before moving the cursor there
        self.move_cursor(self._by_key.get(first_new))

    def reveal(self, key: str) -> None:
        """Move the cursor to ``key``, adding and opening the lines above it as needed."""
        parents = self.model.parents()
        path = [key]
        while path[-1] in parents and parents[path[-1]] != TOP:
            path.append(parents[path[-1]])
        path.reverse()
        for above, below in zip(path, path[1:], strict=False):
            node = self._by_key[above]
            while below not in self._by_key and self._loaded.get(above, 0) < len(
                    self.model.kids(above)):
                more = next((child for child in node.children if isinstance(child.data, More)),
                            None)
                if more is not None:
                    more.remove()
                self._add_children(node, above)
            node.expand()
        self.get_node_at_line(0)  # lay the lines out before moving the cursor there
        self.move_cursor(self._by_key.get(key))

    def set_zoom(self, key: str | None) -> None:
        """Scale the bars to span ``key``'s time (its subtree), or to the whole trace."""
        self.zoom = key if key in self.model.spans else None
        self._relabel()

    def set_matches(self, keys: set[str]) -> None:
        changed = keys ^ self.matches
        self.matches = keys
        self._relabel(changed)

    def _relabel(self, keys: Iterable[str] | None = None) -> None:
        """Label the lines of ``keys`` (default: every line) again."""
        for key in self._by_key if keys is None else keys:
            node = self._by_key.get(key)
            if node is not None:
                node.set_label(self._label(key, self._depth[node.id]))

    # --- keys -------------------------------------------------------------------------
    def _openable(self, node: TreeNode[NodeData]) -> bool:
        return isinstance(node.data, str) and bool(self.model.kids(node.data))

    def action_collapse_or_parent(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and self._openable(node):
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_expand_or_child(self) -> None:
        node = self.cursor_node
        if node is None or not self._openable(node):
            return
        if not node.is_expanded:
            key = node.data
            if key not in self._loaded:
                self._add_children(node, key)  # type: ignore[arg-type]
            node.expand()
        elif node.children:
            self.get_node_at_line(0)  # lay the lines out before moving there
            self.move_cursor(node.children[0])

    def action_collapse_all(self) -> None:
        """Every span closed; the cursor on the top-level span it was under."""
        node = self.cursor_node
        while node is not None and node.parent is not None and node.parent is not self.root:
            node = node.parent
        for child in self.root.children:
            child.collapse_all()
        self.get_node_at_line(0)
        if node is not None:
            self.move_cursor(node)

    def action_expand_all(self) -> None:
        """Every span open, loading children as needed, up to ``EXPAND_ALL_LINES``."""
        budget = EXPAND_ALL_LINES - len(self._by_key)
        queue = list(self.root.children)
        while queue:
            node = queue.pop(0)
            key = node.data
            if not isinstance(key, str) or not self.model.kids(key):
                continue
            if key not in self._loaded:
                if budget <= 0:
                    break
                budget -= self._add_children(node, key)
            node.expand()
            queue.extend(node.children)
        self.get_node_at_line(0)
        if len(self._by_key) >= EXPAND_ALL_LINES:
            self.notify(f"opened the first {EXPAND_ALL_LINES:,} lines of this trace",
                        timeout=3)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        key = event.node.data
        if isinstance(key, str):
            self._open_keys.add(key)
            if key not in self._loaded:
                self._add_children(event.node, key)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[NodeData]) -> None:
        if isinstance(event.node.data, str):
            self._open_keys.discard(event.node.data)

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeData]) -> None:
        if isinstance(event.node.data, More):
            self.load_more(event.node)

    def on_resize(self) -> None:
        width = self._label_width()
        if width != self._width and self._by_key:
            self._width = width
            self._relabel()

    # --- labels -------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            # Partial: no background baked in, so the cursor line still shows.
            style = self._styles[name] = self.get_component_rich_style(
                f"span-tree--{name}", partial=True)
        return style

    def _label_width(self) -> int:
        # The tree's own width, so that a narrow terminal scales the bars rather than cuts
        # them (a Tree line wider than the widget is cut at its right edge).
        return max(self.scrollable_content_region.width, MIN_WIDTH)

    def _geometry(self, depth: int) -> tuple[int, int]:
        """(name cells, bar cells) for a node at ``depth``: bars line up at every depth."""
        width = self._width or self._label_width()
        bar = max(8, width * 3 // 10)
        name_column = width - bar - LAYER_WIDTH - DURATION_WIDTH - 3
        # Guides (none at the top: the root is hidden), and the expand icon's two cells.
        indent = depth * GUIDE_DEPTH + 2
        return max(8, name_column - indent), bar

    def _label(self, key: str, depth: int) -> Text:
        model = self.model
        name_w, bar_w = self._geometry(depth)
        placeholder = model.placeholders.get(key)
        if placeholder is not None:
            if placeholder.kind == "missing":
                text = (f"⚠ parent missing: span {placeholder.parent_span_id} "
                        "not received (orphans)")
            else:
                text = "⚠ parent cycle: these spans' parent ids loop"
            return safe(text, self._style("placeholder"), width=name_w + bar_w + 18)
        span = model.spans[key]
        failed = span.failure is not None or span.status_code == 2
        name = safe(("✗ " if failed else "") + span.name, width=name_w)
        if failed:
            name.stylize(self._style("failed"))
        if key in self.matches:
            name.stylize(self._style("match"))
        if span.finding_count:
            badge = f" ⚠{span.finding_count}"
            name = Text.assemble(fit(name, max(1, name_w - len(badge))),
                                 (badge, self._style("findings")))
        layer_style = self._style(f"layer-{span.layer}" if span.layer in LAYERS else "dim")
        out = fit(name, name_w)
        out.append(" ")
        out.append(f"{span.layer[:LAYER_WIDTH - 1]:<{LAYER_WIDTH}}", style=layer_style)
        out.append(f"{fmt.duration(span.duration_ns):>{DURATION_WIDTH}} ")
        out.append_text(self._bar(span.start_ns, span.duration_ns, bar_w,
                                  self._style("failed") if failed else layer_style))
        return out

    def window(self) -> tuple[int, int]:
        """The (start, end) in ns that the bars span: the trace, or the zoomed span."""
        span = self.model.spans.get(self.zoom or "")
        if span is None:
            return self.model.start_ns, self.model.end_ns
        return span.start_ns, span.start_ns + max(span.duration_ns, 0)

    def _bar(self, start_ns: int, duration_ns: int, width: int, style: Style) -> Text:
        begin, end = self.window()
        total = end - begin
        stop = start_ns + max(duration_ns, 0)
        if stop < begin or start_ns > end:  # outside a zoomed window: which side it lies
            side = "◂" if stop < begin else "▸"
            return Text(f"{side:<{width}}" if side == "◂" else f"{side:>{width}}",
                        style=self._style("dim"), end="")
        if total <= 0:
            left, length = 0, width
        else:
            left = min(width - 1, max(0, int((start_ns - begin) * width / total)))
            right = min(stop - begin, total) * width / total
            length = max(1, min(width - left, round(right) - left))
        bar = Text(" " * left, end="")
        bar.append("█" * length, style=style)
        bar.append(" " * (width - left - length))
        return bar

    def ruler(self) -> Text:
        """The header line above the tree: column names and the time scale of the bars."""
        width = self._width or self._label_width()
        name_w, bar_w = self._geometry(0)
        out = Text(end="", style=self._style("dim"))
        out.append("  ")  # the expand icon's cells of a top-level line
        out.append(f"{'span':<{name_w}} {'layer':<{LAYER_WIDTH}}{'duration':>{DURATION_WIDTH}} ")
        begin, finish = self.window()
        if not self.model.spans:
            first, end = "0", ""
        elif self.zoom is None:
            first, end = "0", fmt.duration(self.model.duration_ns)
        else:  # times from the trace's start, so a zoomed scale reads against the whole
            first = "+" + fmt.duration(begin - self.model.start_ns)
            end = fmt.duration(finish - self.model.start_ns)
        gap = bar_w - len(first) - len(end)
        out.append(f"{first}{' ' * gap}{end}" if gap >= 1 else f"{end:>{bar_w}}")
        out.truncate(width)
        return out

    def _more_label(self, remaining: int) -> Text:
        return Text(f"… {remaining:,} more (enter to load)", style=self._style("dim"), end="")

    def render_label(self, node: TreeNode[NodeData], base_style: Style, style: Style) -> Text:
        # Leaves get the icon's width in blank so that names (and bars) line up.
        text = super().render_label(node, base_style, style)
        if not node.allow_expand:
            text = Text.assemble("  ", text)
        return text
