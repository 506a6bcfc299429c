"""Conversations: traces grouped by session however the session was sent (on the root
only, on every span, arriving before or after the rest of the trace), listed live, and
read as a transcript, from span attributes and from GenAI content sent as log events."""

from __future__ import annotations

import json

from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.conversations import conversation_turns, list_conversations
from agenttop.store.queries import list_traces, parse_trace_filter
from agenttop.store.retention import prune_by_age
from agenttop.store.writer import Writer
from agenttop.tui.screens.conversations import ConversationsScreen, TranscriptScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen
from tests.tui.conftest import SIZE, screen_text, wait_for
from tests.tui.fixtures import (
    NOW,
    hex_trace,
    kvs,
    log_record,
    logs_request,
    span,
    traces_request,
    write,
)
from tests.tui.test_alerts_security import app_for, open_screen

SECOND_MS = 1000


def messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def turn(trace: str, at_s: float, question: str, answer: str, *, session: str | None,
         tool_fails: bool = False) -> list:
    """An agent run: the session id (if any) on its root only, a chat and a tool."""
    base = at_s * SECOND_MS
    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}
    if session is not None:
        root_attrs["gen_ai.conversation.id"] = session
    return [
        span(trace, "invoke_agent support", start_ms=base, duration_ms=900,
             attributes=root_attrs),
        span(trace, "chat gpt-4o", parent="invoke_agent support", start_ms=base + 10,
             duration_ms=300, kind=3, attributes={
                 "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.input.messages": messages("user", question),
                 "gen_ai.output.messages": messages("assistant", answer),
                 "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20}),
        span(trace, "execute_tool lookup_order", parent="invoke_agent support",
             start_ms=base + 400, duration_ms=50,
             error="order service refused" if tool_fails else None, attributes={
                 "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}),
    ]


def build(db) -> None:
    """Through the real writer, whose clock says the rows arrived 100 s before ``NOW``."""
    first = turn("t1", -60, "Where is my order?", "It ships today.", session="c-1")
    # The second turn's children arrive before its root, in a request of their own.
    root, *children = turn("t2", -30, "And the invoice?", "Sent by mail.", session="c-1",
                           tool_fails=True)
    writer = Writer(open_writer(db, synchronous="NORMAL"), clock=lambda: NOW - 100 * 10**9)
    try:
        for spans in (first, children, [root],
                      turn("t3", -10, "Hi", "Hello", session="c-2"),
                      turn("t4", -5, "x", "y", session=None)):
            writer._write([decode("traces", traces_request([("support", spans)]), NOW)])
    finally:
        writer.close()


def test_traces_group_by_the_session_on_their_root(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    conn = open_reader(db)
    try:
        rows = {r.session: r for r in list_conversations(conn)}
        turns = conversation_turns(conn, "c-1")
        last = conversation_turns(conn, "c-1", limit=1)
    finally:
        conn.close()
    assert list(rows) == ["c-2", "c-1"]  # the most recently active first; t4 has none
    c1 = rows["c-1"]
    assert (c1.turns, c1.agents, c1.failed_turns) == (2, ("support",), 1)
    assert (c1.input_tokens, c1.output_tokens) == (200, 40)
    assert [t.trace_id for t in turns] == [hex_trace("t1"), hex_trace("t2")]
    assert [t.trace_id for t in last] == [hex_trace("t2")]  # a long one shows its last turns


def test_retention_takes_a_conversations_turns_with_its_traces(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    conn = open_writer(db)
    try:
        while prune_by_age(conn, NOW - 20 * 10**9, NOW).traces:  # t1 and t2 ended before
            pass
        left = {r.session: r.turns for r in list_conversations(conn)}
    finally:
        conn.close()
    assert left == {"c-2": 1}


async def on_first_conversation(pilot) -> None:
    """The conversations screen of ``build``'s file, the cursor on c-1 (the older one)."""
    screen = await open_screen(pilot, "7", ConversationsScreen)
    await wait_for(pilot, lambda: screen.table.row_count == 2, what="two conversations")
    screen.table.move_cursor(row=1)


async def test_the_list_opens_a_transcript_and_a_turn_opens_its_trace(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await on_first_conversation(pilot)
        assert "c-1" in screen_text(app) and "support" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TranscriptScreen)
                       and app.screen.turns, what="the transcript")
        text = screen_text(app)
        assert "user: Where is my order?" in text and "agent: It ships today." in text
        assert "user: And the invoice?" in text and "agent: Sent by mail." in text
        assert "✓ tool lookup_order" in text
        assert "✗ tool lookup_order  tool_error" in text
        await pilot.press("down", "enter")  # the second turn
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen)
                       and app.screen.loaded, what="the trace")
        assert app.screen.trace_id == hex_trace("t2")
        assert "conversation c-1" in screen_text(app)  # the header names it
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TranscriptScreen), what="back")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationsScreen),
                       what="the list")


async def test_a_transcript_from_content_sent_only_as_log_events(tmp_path):
    db = tmp_path / "a.db"
    chat = span("e", "chat gpt-4o", kind=3, start_ms=-5000, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "c-events"})
    record = log_record("e", "chat gpt-4o", at_ns=NOW - 4 * 10**9, body="",
                        event_name="gen_ai.client.inference.operation.details")
    record.ClearField("body")
    record.attributes.extend(kvs({
        "gen_ai.input.messages": [{"role": "user", "parts": [
            {"type": "text", "content": "Cancel my plan"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [
            {"type": "text", "content": "Your plan is cancelled."}]}]}))
    write(db, ("traces", traces_request([("billing", [chat])])),
          ("logs", logs_request("billing", [record])))
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_screen(pilot, "7", ConversationsScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TranscriptScreen)
                       and app.screen.turns, what="the transcript")
        text = screen_text(app)
    assert "user: Cancel my plan" in text and "agent: Your plan is cancelled." in text


def test_the_trace_list_filters_exactly_by_agent_model_and_session(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    conn = open_reader(db)
    try:
        def found(query: str) -> set[str]:
            return {t.trace_id for t in list_traces(conn, parse_trace_filter(query))}

        every = {hex_trace(t) for t in ("t1", "t2", "t3", "t4")}
        assert found("session:c-1") == {hex_trace("t1"), hex_trace("t2")}
        assert found("agent:support") == every
        assert found("model:gpt-4o") == every
        assert found("model:gpt-4") == set() and found("agent:supp") == set()  # exact names
        assert found("session:c-2 model:gpt-4o") == {hex_trace("t3")}
    finally:
        conn.close()


async def test_t_shows_a_conversations_traces(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await on_first_conversation(pilot)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TracesScreen)
                       and app.screen.table.row_count == 2, what="its two turns")
        assert app.screen.query_text == "session:c-1"
