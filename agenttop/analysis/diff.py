"""Two traces side by side (``agenttop diff A B``, and ``d`` in the trace list): their span
trees aligned, what changed in each aligned pair, what only one has, how the tool-call
sequence changed, and a line diff of what each model call answered.

Children are aligned under aligned parents, in start order, by what a span *is* (its layer,
its operation, and its tool or model, else its name), with difflib's longest matching
subsequence: an extra tool call or a retry shows as a span only in one trace, and the rest
still pair up.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agenttop.config import format_ms
from agenttop.store.rows import SpanRow

Side = Literal["both", "a", "b"]


def span_key(span: SpanRow) -> tuple[str, str, str]:
    """What a span is, for alignment: layer, operation, and tool, model or agent (else its
    name)."""
    genai = span.genai or {}
    what = genai.get("tool") or genai.get("model") or genai.get("agent") or span.name
    return span.layer, str(genai.get("operation") or ""), str(what)


def output_text(span: SpanRow) -> str | None:
    """What a model call answered, as plain text: the OTel GenAI output messages, or
    OpenInference's and OpenLLMetry's flattened completions; None when not sent."""
    attrs = span.attributes or {}
    raw = attrs.get("gen_ai.output.messages")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    if isinstance(raw, list):
        texts = []
        for message in raw:
            parts = message.get("parts", []) if isinstance(message, dict) else []
            texts += [str(p.get("content", "")) for p in parts
                      if isinstance(p, dict) and p.get("type", "text") == "text"]
        return "\n".join(texts)
    flat = sorted((k, v) for k, v in attrs.items() if isinstance(v, str) and (
        (k.startswith("llm.output_messages.") and k.endswith(".message.content"))
        or (k.startswith("gen_ai.completion.") and k.endswith(".content"))))
    return "\n".join(v for _, v in flat) if flat else None


@dataclass
class Pair:
    """An aligned pair of spans, or a span only in one trace (the other side None)."""

    a: SpanRow | None
    b: SpanRow | None
    depth: int
    children: list[Pair] = field(default_factory=list)

    @property
    def side(self) -> Side:
        return "both" if self.a and self.b else "a" if self.a else "b"

    @property
    def span(self) -> SpanRow:
        return self.b or self.a  # type: ignore[return-value]

    def output_diff(self) -> list[str]:
        """A line diff of the two answers (for model calls whose answer changed)."""
        if self.a is None or self.b is None:
            return []
        before, after = output_text(self.a), output_text(self.b)
        if before is None or after is None or before == after:
            return []
        return [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
                if line[:1] in "+-"]


def failed(span: SpanRow) -> bool:
    return span.status_code == 2 or span.failure is not None


def tokens(span: SpanRow) -> int:
    return (span.input_tokens or 0) + (span.output_tokens or 0)


@dataclass
class TraceDiff:
    a: list[SpanRow]
    b: list[SpanRow]
    roots: list[Pair]

    def pairs(self) -> list[Pair]:
        """Every pair, depth first, as the tree reads."""
        out: list[Pair] = []

        def walk(items: list[Pair]) -> None:
            for pair in items:
                out.append(pair)
                walk(pair.children)

        walk(self.roots)
        return out

    def tool_calls(self) -> tuple[list[str], list[str]]:
        """Each trace's tool calls, in start order."""
        def calls(spans: list[SpanRow]) -> list[str]:
            return [span_key(s)[2] for s in sorted(spans, key=lambda s: s.start_ns)
                    if s.layer == "tool" and not (s.genai or {}).get("model")]
        return calls(self.a), calls(self.b)

    def totals(self) -> dict[str, tuple[float, float]]:
        """Whole-trace figures, (a, b): duration, spans, failures, tokens, cost."""
        def figures(spans: list[SpanRow]) -> tuple[float, ...]:
            if not spans:
                return (0, 0, 0, 0, 0.0)
            return (max(s.end_ns for s in spans) - min(s.start_ns for s in spans),
                    len(spans), sum(map(failed, spans)), sum(map(tokens, spans)),
                    sum(s.cost_usd or 0.0 for s in spans))
        names = ("duration_ns", "spans", "failures", "tokens", "cost_usd")
        return dict(zip(names, zip(figures(self.a), figures(self.b), strict=True),
                        strict=True))

    def as_json(self) -> dict[str, Any]:
        def side(span: SpanRow | None) -> dict[str, Any] | None:
            if span is None:
                return None
            return {"span_id": span.span_id, "name": span.name, "duration_ns": span.duration_ns,
                    "tokens": tokens(span), "cost_usd": span.cost_usd,
                    "failed": failed(span), "failure": span.failure}
        tools_a, tools_b = self.tool_calls()
        return {
            "totals": {k: {"a": a, "b": b} for k, (a, b) in self.totals().items()},
            "tool_calls": {"a": tools_a, "b": tools_b, "changed": tools_a != tools_b},
            "spans": [{"depth": p.depth, "side": p.side, "key": list(span_key(p.span)),
                       "a": side(p.a), "b": side(p.b), "output_diff": p.output_diff()}
                      for p in self.pairs()],
        }


def _children(spans: Sequence[SpanRow]) -> dict[str | None, list[SpanRow]]:
    ids = {s.span_id for s in spans}
    out: dict[str | None, list[SpanRow]] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        parent = s.parent_span_id if s.parent_span_id in ids else None  # orphans: roots
        out.setdefault(parent, []).append(s)
    return out


def diff_traces(a: Sequence[SpanRow], b: Sequence[SpanRow]) -> TraceDiff:
    """Align two traces' span trees."""
    kids_a, kids_b = _children(a), _children(b)

    def pair(x: SpanRow, y: SpanRow, depth: int) -> Pair:
        out = Pair(x, y, depth)
        out.children = align(kids_a.get(x.span_id, []), kids_b.get(y.span_id, []), depth + 1)
        return out

    def align(xs: list[SpanRow], ys: list[SpanRow], depth: int) -> list[Pair]:
        # Failed or not is part of the match, so that a retried call pairs with its
        # successful retry (the failed attempt is the extra span); a lone call that now
        # fails still pairs below, as a status change.
        matcher = difflib.SequenceMatcher(a=[(*span_key(s), failed(s)) for s in xs],
                                          b=[(*span_key(s), failed(s)) for s in ys],
                                          autojunk=False)
        out: list[Pair] = []
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                out += [pair(x, y, depth) for x, y in zip(xs[i1:i2], ys[j1:j2], strict=True)]
                continue
            left, right = xs[i1:i2], ys[j1:j2]
            if op == "replace" and len(left) == len(right) and all(
                    span_key(x) == span_key(y) for x, y in zip(left, right, strict=True)):
                out += [pair(x, y, depth) for x, y in zip(left, right, strict=True)]
                continue
            # Each span only in its trace, with its subtree.
            out += [_alone(x, None, depth, kids_a) for x in left]
            out += [_alone(None, y, depth, kids_b) for y in right]
        return out

    return TraceDiff(list(a), list(b), align(kids_a.get(None, []), kids_b.get(None, []), 0))


def _alone(a: SpanRow | None, b: SpanRow | None, depth: int,
           kids: dict[str | None, list[SpanRow]]) -> Pair:
    span = a or b
    assert span is not None
    pair = Pair(a, b, depth)
    pair.children = [_alone(k if a else None, None if a else k, depth + 1, kids)
                     for k in kids.get(span.span_id, [])]
    return pair


def _dur(ns: float) -> str:
    return format_ms(ns / 1e6)


def _delta(a: float, b: float, unit: str) -> str:
    if a == b:
        return ""
    sign = "+" if b > a else "-"
    size = abs(b - a)
    text = (_dur(size) if unit == "ns" else f"${size:.4f}" if unit == "usd"
            else f"{size:g}")
    return f" ({sign}{text})"


def render_text(diff: TraceDiff, a_id: str, b_id: str) -> str:
    """Two traces compared, as text: totals, the tool-call sequence, then the aligned tree
    (``=`` in both, ``-`` only in A, ``+`` only in B) with what changed in each pair."""
    lines = [f"diff {a_id} (A) → {b_id} (B)"]
    totals = diff.totals()
    parts = []
    for name, unit, label in (("duration_ns", "ns", "duration"), ("spans", "", "spans"),
                              ("failures", "", "failures"), ("tokens", "", "tokens"),
                              ("cost_usd", "usd", "cost")):
        a, b = totals[name]
        show = (_dur if unit == "ns" else (lambda v: f"${v:.4f}") if unit == "usd"
                else lambda v: f"{v:g}")
        parts.append(f"{label} {show(a)} → {show(b)}{_delta(a, b, unit)}")
    lines.append("  " + " · ".join(parts))
    tools_a, tools_b = diff.tool_calls()
    if tools_a != tools_b:
        lines.append(f"  tool calls changed: {', '.join(tools_a) or '(none)'} → "
                     f"{', '.join(tools_b) or '(none)'}")
    else:
        lines.append(f"  tool calls the same: {', '.join(tools_a) or '(none)'}")
    lines.append("")
    for pair in diff.pairs():
        mark = {"both": "=", "a": "-", "b": "+"}[pair.side]
        span = pair.span
        head = f"{mark} {'  ' * pair.depth}{span.name}"
        if pair.side != "both":
            where = "only in A" if pair.side == "a" else "only in B"
            state = ", failed" if failed(span) else ""
            lines.append(f"{head}  [{where}: {_dur(span.duration_ns)}{state}]")
            continue
        a, b = pair.a, pair.b
        assert a is not None and b is not None
        notes = [f"{_dur(a.duration_ns)} → {_dur(b.duration_ns)}"
                 f"{_delta(a.duration_ns, b.duration_ns, 'ns')}"]
        tokens_a, tokens_b = tokens(a), tokens(b)
        if tokens_a != tokens_b:
            notes.append(f"tokens {tokens_a} → {tokens_b}")
        if (a.cost_usd or 0) != (b.cost_usd or 0):
            notes.append(f"cost ${a.cost_usd or 0:.4f} → ${b.cost_usd or 0:.4f}")
        if failed(a) != failed(b):
            notes.append("now FAILED" + (f" ({b.failure})" if b.failure else "")
                         if failed(b) else "now ok")
        lines.append(f"{head}  {' · '.join(notes)}")
        for line in pair.output_diff():
            lines.append(f"  {'  ' * pair.depth}  │ {line}")
    return "\n".join(lines) + "\n"
