"""Conversations: traces grouped by their session (``traces.session``, from
``gen_ai.conversation.id``, OpenInference ``session.id``, OpenLLMetry's association
``session_id``, LangGraph's ``thread_id``), one row each in ``conversations`` kept by the
writer, and every read the conversations screen and its transcripts make.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from agenttop.store.queries import count_capped, like

# Recomputed from its turns (traces) for each conversation a transaction touched; a
# conversation whose turns are all gone (retention) goes too.
_REFRESH = """
INSERT INTO conversations (session, turns, first_ns, last_ns, agents, services, input_tokens,
                           output_tokens, cost_usd, unpriced, failed_turns, findings,
                           updated_ns)
SELECT session, count(*), min(start_ns), max(start_ns + duration_ns),
       coalesce(group_concat(DISTINCT nullif(agents, '')), ''),
       coalesce(group_concat(DISTINCT nullif(services, '')), ''),
       sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(unpriced),
       sum(error_count > 0), sum(finding_count), max(updated_ns)
FROM traces WHERE session IN (SELECT value FROM json_each(:sessions))
GROUP BY session
ON CONFLICT (session) DO UPDATE SET
    turns = excluded.turns, first_ns = excluded.first_ns, last_ns = excluded.last_ns,
    agents = excluded.agents, services = excluded.services,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    cost_usd = excluded.cost_usd, unpriced = excluded.unpriced,
    failed_turns = excluded.failed_turns, findings = excluded.findings,
    updated_ns = excluded.updated_ns
"""
_FORGET = """
DELETE FROM conversations WHERE session IN (SELECT value FROM json_each(:sessions))
  AND NOT EXISTS (SELECT 1 FROM traces WHERE traces.session = conversations.session)
"""


def sessions_of(conn: apsw.Connection, trace_ids: Iterable[str]) -> list[str]:
    """The conversations these traces are turns of."""
    return [row[0] for row in conn.execute(
        "SELECT DISTINCT session FROM traces WHERE trace_id IN (SELECT value FROM json_each(?)) "
        "AND session IS NOT NULL", (json.dumps(sorted(trace_ids)),))]


def refresh_conversations(conn: apsw.Connection, sessions: list[str]) -> None:
    """Recompute these conversations from their traces (inside the caller's transaction)."""
    if sessions:
        bound = {"sessions": json.dumps(sessions)}
        conn.execute(_REFRESH, bound)
        conn.execute(_FORGET, bound)


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """One conversation as the conversations screen lists it."""

    session: str
    turns: int
    first_ns: int
    last_ns: int
    agents: tuple[str, ...]
    services: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced: int
    failed_turns: int
    findings: int


def _names(joined: str) -> tuple[str, ...]:
    """Comma-joined lists of names, joined again: each name once, sorted."""
    return tuple(sorted({n for n in joined.split(",") if n}))


def _where(text: str) -> tuple[str, dict[str, object]]:
    if not text.strip():
        return "1", {}
    words = text.split()
    parts = [f"(session LIKE :w{i} ESCAPE '\\' OR agents LIKE :w{i} ESCAPE '\\' "
             f"OR services LIKE :w{i} ESCAPE '\\')" for i in range(len(words))]
    bound = {f"w{i}": like(w) for i, w in enumerate(words)}
    return " AND ".join(parts), bound


def list_conversations(conn: apsw.Connection, text: str = "", *, limit: int = 200,
                       offset: int = 0) -> list[ConversationRow]:
    """Conversations, the most recently active first (through ``conversations_last``);
    ``text``: words in the session id, agents or services."""
    where, bound = _where(text)
    rows = conn.execute(
        "SELECT session, turns, first_ns, last_ns, agents, services, input_tokens, "
        "output_tokens, cost_usd, unpriced, failed_turns, findings FROM conversations "
        f"WHERE {where} ORDER BY last_ns DESC, session DESC LIMIT :limit OFFSET :offset",
        {**bound, "limit": limit, "offset": offset})
    return [ConversationRow(r[0], r[1], r[2], r[3], _names(r[4]), _names(r[5]), *r[6:])
            for r in rows]


def count_conversations(conn: apsw.Connection, text: str = "", *, cap: int = 10_000) -> int:
    """How many conversations match, counting no further than ``cap``."""
    return count_capped(conn, "conversations", *_where(text), cap)


@dataclass(frozen=True, slots=True)
class TurnSpan:
    """A span of a turn that the transcript reads: a model call with its messages, a tool
    call, a failure, or a GenAI event's messages (``is_log``)."""

    span_id: str | None
    name: str
    start_ns: int
    layer: str
    failure: str | None
    tool: str | None
    messages: dict  # message attributes (gen_ai.input.messages, llm.input_messages.*, ...)
    is_log: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    trace_id: str
    start_ns: int
    duration_ns: int
    root_name: str | None
    error_count: int
    cost_usd: float | None
    spans: list[TurnSpan]


# Attribute keys a transcript reads messages from (exact keys, then OpenInference's
# flattened ones by prefix).
_MESSAGE_ATTRS = ("gen_ai.input.messages", "gen_ai.output.messages", "input.value",
                  "output.value")


def conversation_turns(conn: apsw.Connection, session: str, *, limit: int = 500
                       ) -> list[Turn]:
    """The conversation's last ``limit`` turns (traces), oldest first, each with the spans
    a transcript needs: model calls (their messages), tool calls and failures, and GenAI
    log events."""
    turns = [Turn(trace_id, start, duration, root, errors, cost, [])
             for trace_id, start, duration, root, errors, cost in conn.execute(
                 "SELECT trace_id, start_ns, duration_ns, root_name, error_count, cost_usd "
                 "FROM traces WHERE session = ? ORDER BY start_ns DESC LIMIT ?",
                 (session, limit))]
    turns.reverse()
    if not turns:
        return []
    by_id = {t.trace_id: t for t in turns}
    ids = json.dumps(list(by_id))
    picks = ", ".join(f"'{k}', s.attributes -> '$.\"{k}\"'" for k in _MESSAGE_ATTRS)
    for trace_id, span_id, name, start, layer, failure, tool, messages, flat in conn.execute(
            "SELECT s.trace_id, s.span_id, s.name, s.start_ns, s.layer, s.failure, "
            f"s.genai ->> '$.tool', json_object({picks}), "
            "(SELECT json_group_object(key, value) FROM json_each(s.attributes) "
            " WHERE key LIKE 'llm.%put\\_messages.%' ESCAPE '\\') "
            "FROM spans AS s WHERE s.trace_id IN (SELECT value FROM json_each(?)) "
            "AND (s.genai ->> '$.model' IS NOT NULL OR s.layer = 'tool' "
            "OR s.failure IS NOT NULL) ORDER BY s.start_ns, s.rowid", (ids,)):
        attrs = {k: v for k, v in json.loads(messages).items() if v is not None}
        attrs.update(json.loads(flat or "{}"))
        by_id[trace_id].spans.append(TurnSpan(span_id, name, start, layer, failure, tool,
                                              attrs))
    for trace_id, span_id, time_ns, event, body, attributes in conn.execute(
            "SELECT trace_id, span_id, time_ns, event_name, body, attributes FROM logs "
            "WHERE trace_id IN (SELECT value FROM json_each(?)) "
            "AND event_name LIKE 'gen\\_ai.%' ESCAPE '\\' ORDER BY time_ns, log_id", (ids,)):
        attrs = json.loads(attributes)
        if body:
            attrs["body"] = body
        by_id[trace_id].spans.append(TurnSpan(span_id, event, time_ns, "log", None, None,
                                              attrs, is_log=True))
    for turn in turns:
        turn.spans.sort(key=lambda s: s.start_ns)
    return turns
