"""Where each span of a trace hangs in the tree: computed off the UI thread, pure.

Spans arrive in any order and a trace is shown while it is still arriving, so the tree
must say what it does not know yet rather than hide spans:

- a span whose parent has not been received (an *orphan*) hangs under a placeholder for
  that parent ("parent missing"), which sits under the trace's root span, or at the top
  when no root has arrived either; when the parent arrives, the next build adopts it;
- spans whose parent ids form a cycle (a span that is its own parent, A -> B -> A) can
  never be reached from a root; they hang under a "parent cycle" placeholder at the top,
  each shown once, so walking the tree always ends.

The model is plain data (``children`` keyed by node key, ``""`` the invisible top), built
in one pass over the spans plus one iterative walk: no recursion, whatever the depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from agenttop.store.queries import SpanNode

TOP = ""
MISSING_PREFIX = "missing:"
CYCLE_KEY = "cycle:"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A node that is not a span: a parent that has not arrived, or a parent cycle."""

    key: str
    kind: Literal["missing", "cycle"]
    parent_span_id: str | None  # the missing parent's id


@dataclass
class TraceModel:
    spans: dict[str, SpanNode] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    placeholders: dict[str, Placeholder] = field(default_factory=dict)
    orphans: set[str] = field(default_factory=set)  # spans hanging under a missing parent
    start_ns: int = 0
    end_ns: int = 0

    @property
    def duration_ns(self) -> int:
        return max(self.end_ns - self.start_ns, 0)

    def kids(self, key: str) -> list[str]:
        return self.children.get(key, [])

    def parents(self) -> dict[str, str]:
        """Each node's key -> its parent's key (``TOP`` for the top level)."""
        return {child: key for key, kids in self.children.items() for child in kids}

    def order(self) -> list[str]:
        """Every node's key in the order the fully opened tree shows them (depth first)."""
        out: list[str] = []
        stack = list(reversed(self.kids(TOP)))
        while stack:
            key = stack.pop()
            out.append(key)
            stack.extend(reversed(self.kids(key)))
        return out

    def __len__(self) -> int:
        return len(self.spans)


def build_model(spans: Sequence[SpanNode]) -> TraceModel:
    """The tree of ``spans`` (given in start order, which is kept among siblings)."""
    model = TraceModel()
    if not spans:
        model.children[TOP] = []
        return model
    by_id = model.spans
    for s in spans:
        by_id[s.span_id] = s
    model.start_ns = min(s.start_ns for s in spans)
    model.end_ns = max(s.start_ns + max(s.duration_ns, 0) for s in spans)

    kids: dict[str, list[str]] = {}
    roots: list[str] = []
    missing: dict[str, list[str]] = {}
    for s in spans:
        parent = s.parent_span_id
        if not parent:
            roots.append(s.span_id)
        elif parent in by_id:
            kids.setdefault(parent, []).append(s.span_id)
        else:
            missing.setdefault(parent, []).append(s.span_id)

    children = model.children
    visited: set[str] = set()

    def walk(start: str) -> None:
        # Each span is placed once: a child already placed (a cycle) is skipped.
        stack = [start]
        while stack:
            key = stack.pop()
            placed = []
            for child in kids.get(key, ()):
                if child not in visited:
                    visited.add(child)
                    placed.append(child)
            children[key] = placed
            stack.extend(reversed(placed))

    top: list[str] = []
    for root in roots:
        visited.add(root)
        top.append(root)
        walk(root)

    for parent, orphans in missing.items():
        key = MISSING_PREFIX + parent
        model.placeholders[key] = Placeholder(key, "missing", parent)
        children[key] = list(orphans)
        model.orphans.update(orphans)
        (children[roots[0]] if roots else top).append(key)
        for orphan in orphans:
            visited.add(orphan)
            walk(orphan)

    if len(visited) < len(by_id):
        cycle: list[str] = []
        for s in spans:
            if s.span_id not in visited:
                visited.add(s.span_id)
                cycle.append(s.span_id)
                walk(s.span_id)
        model.placeholders[CYCLE_KEY] = Placeholder(CYCLE_KEY, "cycle", None)
        children[CYCLE_KEY] = cycle
        top.append(CYCLE_KEY)

    children[TOP] = top
    return model
