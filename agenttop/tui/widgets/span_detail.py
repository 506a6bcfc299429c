"""The detail pane of the trace screen: everything stored about the selected span.

Built as one ``Text`` from a ``SpanDetail`` (loaded off the UI thread when the span is
selected): identity and timing, status and failure, attributes (GenAI messages shown as
``role: content`` conversations), events, linked logs, PII and injection findings, the
resource and links. Values are shown whole (wrapped), never parsed as markup, with
control characters made visible (``agenttop.tui.text``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from agenttop.store.queries import MESSAGE_KEYS, SpanDetail
from agenttop.tui import fmt
from agenttop.tui.text import clean, safe

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
         5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
SEVERITIES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"),
              (1, "TRACE"))
KEY_WIDTH = 28  # the key column's widest; longer keys wrap inside it, at a separator
VALUE_MIN = 22
# Where a long key may break: after a dot, slash or colon, else after ``_`` or ``-``.
_KEY_PARTS = (re.compile(r"[^./:]*[./:]?"), re.compile(r"[^_\-]*[_\-]?"))


def break_key(key: str, width: int) -> str:
    """``key`` in lines of at most ``width`` cells, broken after ``.``, ``/`` or ``:``
    (``gen_ai.`` / ``conversation.id``, never ``gen_ai.conversati`` / ``on.id``), a part
    still too long after ``_`` or ``-``, and only a word longer than ``width`` inside."""
    lines = [""]

    def place(part: str, level: int) -> None:
        if len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        elif len(part) <= width:
            lines.append(part)
        elif level < len(_KEY_PARTS):
            for piece in _KEY_PARTS[level].findall(part):
                place(piece, level + 1)
        else:
            for at in range(0, len(part), width):
                place(part[at:at + width], level)

    place(key, 0)
    return "\n".join(line for line in lines if line)


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _tidy(value: Any) -> Any:
    """Floats to 6 significant digits (0.0032, not 0.0031999999999999997), inside too."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Sorted keys: the same object reads the same way every time (stored order varies).
    return json.dumps(_tidy(value), ensure_ascii=False, separators=(", ", ": "),
                      sort_keys=True)


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return _compact(part)
    kind = part.get("type")
    if kind in (None, "text") and "content" in part:
        return _compact(part["content"])
    if kind == "tool_call":
        return f"→ {part.get('name', '?')}({_compact(part.get('arguments', ''))})"
    if kind == "tool_call_response":
        return f"← {_compact(part.get('response', part.get('result', '')))}"
    return _compact(part)


FINISH_PREFIX = "(finish: "  # the last line of a message that says why the model stopped


def message_words(content: str) -> list[str]:
    """A message's lines without its finish reason: what a list or a transcript shows."""
    return [line for line in content.split("\n") if not line.startswith(FINISH_PREFIX)]


def message_lines(value: Any) -> list[tuple[str, str]] | None:
    """A GenAI messages attribute as (role, content) pairs; None if it is not one.

    Understands OTel GenAI (``parts`` of text / tool_call / tool_call_response), the
    older ``content`` form, OpenAI-style ``tool_calls`` and system instructions (a list
    of parts without a role).
    """
    data = _as_json(value)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        return None
    out: list[tuple[str, str]] = []
    for message in data:
        if not isinstance(message, dict):
            return None
        role = str(message.get("role", "system" if "type" in message else "?"))
        if "parts" in message and isinstance(message["parts"], list):
            texts = [_part_text(p) for p in message["parts"]]
        elif "content" in message:
            content = message["content"]  # None or "" beside tool calls: no words
            texts = [_part_text({"type": "text", "content": content})] if content else []
        elif "type" in message:
            texts = [_part_text(message)]
        elif message.get("tool_calls"):
            texts = []
        else:
            return None
        for call in message.get("tool_calls") or ():
            function = call.get("function", call) if isinstance(call, dict) else {}
            texts.append(f"→ {function.get('name', '?')}"
                         f"({_compact(function.get('arguments', ''))})")
        reason = message.get("finish_reason")
        if reason:
            texts.append(f"{FINISH_PREFIX}{reason})")
        out.append((role, "\n".join(texts)))
    return out


# OpenInference flattens messages into keys: llm.input_messages.0.message.role, ...
_FLAT_MESSAGE = re.compile(r"(llm\.(?:input|output)_messages)\.(\d+)\.message\.(.+)")
_FLAT_TOOL_CALL = re.compile(r"tool_calls\.(\d+)\.tool_call\.(?:function\.)?(name|arguments)")
_FLAT_PART = re.compile(r"contents\.(\d+)\.message_content\.text")


def flattened_messages(attributes: dict[str, Any]) -> dict[str, tuple[list[dict], list[str]]]:
    """OpenInference's flattened messages, rebuilt: prefix -> (messages, keys used)."""
    found: dict[str, dict[int, dict]] = {}
    keys: dict[str, list[str]] = {}
    for key, value in attributes.items():
        m = _FLAT_MESSAGE.fullmatch(key)
        if m is None:
            continue
        prefix, index, rest = m.group(1), int(m.group(2)), m.group(3)
        message = found.setdefault(prefix, {}).setdefault(index, {})
        keys.setdefault(prefix, []).append(key)
        call = _FLAT_TOOL_CALL.fullmatch(rest)
        part = _FLAT_PART.fullmatch(rest)
        if call is not None:
            calls = message.setdefault("_calls", {})
            calls.setdefault(int(call.group(1)), {})[call.group(2)] = value
        elif part is not None:
            message.setdefault("_parts", {})[int(part.group(1))] = value
        elif rest in ("role", "content"):
            message[rest] = value
    out = {}
    for prefix, by_index in found.items():
        messages = []
        for _, message in sorted(by_index.items()):
            parts = message.pop("_parts", {})
            if "content" not in message and parts:
                message["content"] = "\n".join(str(v) for _, v in sorted(parts.items()))
            calls = message.pop("_calls", {})
            if calls:
                message["tool_calls"] = [{"function": c} for _, c in sorted(calls.items())]
            message.setdefault("role", "?")
            messages.append(message)
        out[prefix] = (messages, keys[prefix])
    return out


# The role an event's name implies when its body does not say.
EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
               "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
               "gen_ai.choice": "assistant"}


def event_messages(attributes: dict[str, Any]) -> str | None:
    """The message attributes of a GenAI event with an empty body, as one JSON object."""
    found = {k: attributes[k] for k in MESSAGE_KEYS if k in attributes}
    return json.dumps(found) if found else None


def log_messages(event_name: str | None, body: str | None) -> list[tuple[str, str]] | None:
    """A GenAI content event's body as (role, content) pairs; None for any other log.

    ``body`` may also be a JSON object of the event's message attributes (what the log
    list reads for an event sent with an empty body, as ``event_messages``).
    """
    if not event_name or not event_name.startswith("gen_ai.") or not body:
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    role = EVENT_ROLES.get(event_name)
    if isinstance(data, dict):
        if isinstance(data.get("message"), dict):  # gen_ai.choice
            message = dict(data["message"])
            if "finish_reason" in data and "finish_reason" not in message:
                message["finish_reason"] = data["finish_reason"]
            data = message
        elif not set(MESSAGE_KEYS).isdisjoint(data):
            lines: list[tuple[str, str]] = []
            for key in MESSAGE_KEYS:
                lines += message_lines(data.get(key)) or []
            return lines or None
        if role and "role" not in data and ("content" in data or "parts" in data):
            data = {**data, "role": role}
    lines = message_lines(data)
    if lines and role:
        lines = [(role if r == "?" else r, c) for r, c in lines]
    return lines


# On spans, also pydantic-ai's whole conversation of an agent run.
SPAN_MESSAGE_KEYS = (*MESSAGE_KEYS, "pydantic_ai.all_messages")


def conversations(d: SpanDetail) -> tuple[list[tuple[str, str, list[tuple[str, str]]]],
                                         set[str]]:
    """A span's conversations, wherever its instrumentation put them, as (title, the
    attribute holding it or "", (role, content) lines); and the attribute keys they came
    from, which the detail then does not also list as raw attributes."""
    out = []
    used: set[str] = set()
    for key in SPAN_MESSAGE_KEYS:
        lines = message_lines(d.attributes[key]) if key in d.attributes else None
        if lines is not None:
            out.append((key, key, lines))
            used.add(key)
    for prefix, (messages, keys) in flattened_messages(d.attributes).items():
        lines = message_lines(messages)
        if lines is not None:
            out.append((prefix, prefix, lines))
            used.update(keys)
    for log in d.logs:  # GenAI events sent as log records (content as events only)
        lines = log_messages(log.event_name, log.body or event_messages(log.attributes))
        if lines:
            out.append((f"{log.event_name} (log)", "", lines))
    return out, used


def severity_name(number: int, text: str) -> str:
    if text:
        return text
    for floor, name in SEVERITIES:
        if number >= floor:
            return name
    return "-"


class SpanDetailView(Static):
    """Renders one ``SpanDetail``; ``show(None)`` shows a hint."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "span-detail--title", "span-detail--heading", "span-detail--key",
        "span-detail--dim", "span-detail--error", "span-detail--finding",
        "span-detail--role",
    }
    _layout_width = 60  # the width being laid out for (``render_detail``)

    def _s(self, name: str) -> Style:
        return self.get_component_rich_style(f"span-detail--{name}", partial=True)

    def show_message(self, message: str) -> None:
        self.update(Text(message, style=self._s("dim"), end=""))

    def show(self, d: SpanDetail, trace_start_ns: int | None = None, *,
             mark: str | None = None) -> None:
        """``mark``: a finding's location to point out (from the security screen)."""
        self.update(_Laid(self, d, trace_start_ns, mark))

    # --- building -----------------------------------------------------------------------
    def _heading(self, title: str, count: int | None = None) -> Text:
        text = Text("\n" + (title if count is None else f"{title} ({count})"),
                    style=self._s("heading"), end="")
        return text

    def _table(self, rows: Iterable[tuple[str | Text, Any]] | Iterable[tuple[str, Any, Any]],
               ) -> Table:
        """Keys and values in two columns; a long value wraps inside its own column, a
        long key at its separators (``break_key``)."""
        rows = [(clean(row[0]), *row[1:]) if isinstance(row[0], str) else row for row in rows]
        widest = max((len(key) if isinstance(key, str) else key.cell_len
                      for key, *_ in rows), default=1)
        # Values keep at least VALUE_MIN cells while the key column has a third or more.
        width = self._layout_width
        key_width = min(widest, max(min(12, width // 3), min(KEY_WIDTH, width - VALUE_MIN)))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style=self._s("key"), width=key_width, overflow="fold")
        table.add_column(ratio=1, overflow="fold")
        for row in rows:
            key, value, *style = row
            text = value if isinstance(value, Text) else safe(
                value if isinstance(value, str) else _compact(value),
                style[0] if style else "", multiline=True)
            table.add_row(key if isinstance(key, Text) else safe(
                break_key(key, key_width), multiline=True), text)
        return table

    def _marked(self, key: str, mark: str | None) -> str | Text:
        """An attribute key, pointed at when the marked finding lies inside it."""
        if mark is None or not (mark == key or mark.startswith((key + ":", key + ".",
                                                               key + "["))):
            return key
        text = Text("▶ ", style=self._s("finding"), end="")
        text.append_text(safe(key, self._s("finding")))
        return text

    def render_detail(self, d: SpanDetail, trace_start_ns: int | None = None, *,
                      mark: str | None = None, width: int = 60) -> Group:
        """The detail laid out for ``width`` cells."""
        self._layout_width = width
        parts: list[RenderableType] = []
        failed = d.failure is not None or d.status_code == 2
        parts.append(safe(("✗ " if failed else "") + d.name,
                          self._s("error") if failed else self._s("title"), multiline=True))
        if mark is not None:
            here = [f for f in d.findings if f.location == mark]
            line = Text("▶ finding at ", style=self._s("finding"), end="")
            line.append_text(safe(mark, self._s("finding")))
            if here:
                line.append_text(safe(": " + ", ".join(sorted({f"{f.kind} {f.pattern}"
                                                               for f in here})),
                                      self._s("finding")))
            parts.append(line)
        status = STATUS.get(d.status_code, str(d.status_code))
        if d.status_message:
            status += f": {d.status_message}"
        error = self._s("error")
        start = fmt.clock(d.start_ns)
        if trace_start_ns is not None and d.start_ns > trace_start_ns:
            start += f" (+{fmt.duration(d.start_ns - trace_start_ns)})"
        ident: list[tuple[str, Any, Any]] = [
            ("span", d.span_id, ""), ("parent", d.parent_span_id or "(root)", ""),
            ("trace", d.trace_id, ""), ("kind", KINDS.get(d.kind, str(d.kind)), ""),
            ("service", d.service, ""), ("scope", d.scope or "–", ""),
            ("start", start, ""), ("duration", fmt.duration(d.duration_ns), ""),
            ("layer", d.layer, ""),
            ("status", status, error if d.status_code == 2 else ""),
            ("failure", d.failure or "none", error if d.failure else ""),
        ]
        if d.genai:
            priced = d.genai.get("cost_usd")
            if priced is not None:
                ident.append(("cost", f"{fmt.usd(priced)} (price: "
                                      f"{d.genai.get('price_source', '?')})", ""))
            elif d.genai.get("unpriced"):
                ident.append(("cost", "no price for this model (add it with --prices FILE)",
                              ""))
            ident.append(("genai", d.genai, ""))
        for field, (value, source) in d.inherited.items():
            ident.append((field, f"{value} (from {source})", ""))
        parts.append(self._table(ident))

        conversation, as_messages = conversations(d)
        parts.append(self._heading("Attributes", len(d.attributes)))
        parts.append(self._table((self._marked(k, mark), v) for k, v in sorted(
            (k, v) for k, v in d.attributes.items() if k not in as_messages)))
        for title, key, lines in conversation:
            heading = self._heading(f"Messages · {title}", len(lines))
            if key and self._marked(key, mark) is not key:
                heading.append("  ◀ finding", style=self._s("finding"))
            parts.append(heading)
            parts.append(self._table(
                (safe(role + ":", self._s("role")), content) for role, content in lines))

        parts.append(self._heading("Events", len(d.events)))
        for event in d.events:
            if not isinstance(event, dict):
                continue
            line = Text(end="")
            at = event.get("time_ns")
            if isinstance(at, int):
                line.append(f"+{fmt.duration(at - d.start_ns)} ", style=self._s("dim"))
            name = str(event.get("name", ""))
            line.append_text(safe(name, error if name == "exception" else "", multiline=True))
            parts.append(line)
            attributes = event.get("attributes") or {}
            if attributes:
                parts.append(Padding(self._table(sorted(attributes.items())), (0, 0, 0, 2)))

        parts.append(self._heading("Logs", d.logs_total))
        rows = []
        for log in d.logs:
            severity = severity_name(log.severity_number, log.severity_text)
            body = Text(end="")
            body.append_text(safe(severity, error if log.severity_number >= 17 else ""))
            if log.event_name:
                body.append(" ")
                body.append_text(safe(log.event_name, self._s("key")))
            body.append("\n")
            if not log.body and log_messages(log.event_name, event_messages(log.attributes)):
                body.append("(its messages are shown above)", style=self._s("dim"))
            else:
                body.append_text(safe(log.body or "", multiline=True))
            rows.append((Text(fmt.clock(log.time_ns), end=""), body))
        parts.append(self._table(rows))
        if d.logs_total > len(d.logs):
            parts.append(Text(f"… {d.logs_total - len(d.logs):,} more", style=self._s("dim")))

        parts.append(self._heading("Findings", len(d.findings)))
        rows = []
        for finding in d.findings:
            where = Text(end="")
            if finding.location == mark:
                where.append("▶ ", style=self._s("finding"))
            where.append_text(safe(finding.location))
            if finding.direction:
                where.append_text(safe(f" ({finding.direction})", self._s("dim")))
            where.append("\n")
            where.append_text(safe(finding.excerpt, multiline=True))
            rows.append((safe(f"{finding.kind} {finding.pattern}", self._s("finding")), where))
        parts.append(self._table(rows))

        if d.links:
            parts.append(self._heading("Links", len(d.links)))
            parts.append(self._table(
                (str(link.get("span_id", "")), f"trace {link.get('trace_id', '')}")
                for link in d.links if isinstance(link, dict)))
        if d.dropped_counts:
            parts.append(self._heading("Dropped by the SDK"))
            parts.append(self._table(sorted(d.dropped_counts.items())))
        parts.append(self._heading("Resource", len(d.resource)))
        parts.append(self._table(sorted(d.resource.items())))
        for part in parts:
            if isinstance(part, Text):
                part.end = "\n"  # one part per line: safe() texts end without a newline
        return Group(*parts)


class _Laid:
    """A span's detail, laid out when it is rendered: a resized pane lays it out again
    (its key column follows the pane's width) without the span being read again."""

    def __init__(self, view: SpanDetailView, d: SpanDetail, trace_start_ns: int | None,
                 mark: str | None) -> None:
        self.view, self.detail, self.trace_start_ns, self.mark = view, d, trace_start_ns, mark

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.view.render_detail(self.detail, self.trace_start_ns, mark=self.mark,
                                      width=options.max_width)
