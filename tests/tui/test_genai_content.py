"""Conversations wherever instrumentations put them: OpenInference's flattened
``llm.input_messages.N.message.*`` keys, and GenAI events sent as log records with an empty
body (OTel's event-only content capture), shown as the span's Messages and in the log list;
a trace counts the findings of its logs with those of its spans."""

from __future__ import annotations

import json
from pathlib import Path

from agenttop.otlp.otlp_json import parse_message
from agenttop.store import open_reader
from agenttop.store.queries import get_trace, list_traces, parse_trace_filter
from agenttop.tui.screens.logs import LogsScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.widgets.span_detail import SpanDetailView
from tests.tui.conftest import SIZE, rendered, screen_text, wait_for
from tests.tui.fixtures import (
    NOW,
    hex_span,
    hex_trace,
    kvs,
    log_record,
    logs_request,
    span,
    traces_request,
    write,
)
from tests.tui.test_alerts_security import app_for, open_screen

COMPAT = Path(__file__).parent.parent / "compat"
SSN = "219-09-9999"
EVENT = "gen_ai.client.inference.operation.details"


def _flat(detail: str) -> str:
    return " ".join(detail.split())


async def shown_detail(pilot, trace_id: str, span_id: str) -> str:
    """Open a trace at a span; the span detail pane's whole text."""
    app = pilot.app
    app.open_trace(trace_id, span_id=span_id)
    await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen)
                   and app.screen.detail_span_id == span_id, what="the span")
    await pilot.pause()
    return rendered(app.screen.query_one(SpanDetailView))


async def test_openinference_flattened_messages_show_as_messages(tmp_path):
    """The recorded LangGraph run: the model call's conversation reads as messages."""
    db = tmp_path / "agenttop.db"
    recorded = json.loads((COMPAT / "langgraph-openinference.json").read_text())
    write(db, ("traces", parse_message("traces", recorded["request"]).SerializeToString()))
    conn = open_reader(db)
    trace_id, span_id = next(iter(conn.execute(
        "SELECT trace_id, span_id FROM spans WHERE name = 'ChatOpenAI' AND attributes "
        "LIKE '%llm.input_messages.2.message.role%'")))
    conn.close()
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        detail = await shown_detail(pilot, trace_id, span_id)
    flat = _flat(detail)
    assert "Messages · llm.input_messages (3)" in flat
    assert "user: Where is my order 1042? My SSN is [SSN]." in flat
    assert 'assistant: → order_status({"order_id": "1042"})' in flat
    assert "tool: order 1042: shipped" in flat
    assert "Messages · llm.output_messages (1) assistant: Your order 1042 ships tomorrow." in flat
    assert "llm.input_messages.0.message.role" not in detail  # not also as raw attributes


def _event_only_trace(db: Path) -> tuple[str, str]:
    """A chat span whose content came only as a GenAI event log record, as the official
    openai-v2 instrumentation sends it with content capture set to event_only."""
    chat = span("t", "chat gpt-4o-mini", kind=3, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai"})
    record = log_record("t", "chat gpt-4o-mini", at_ns=NOW + 10**6, body="",
                        event_name=EVENT)
    record.ClearField("body")
    record.attributes.extend(kvs({
        "gen_ai.input.messages": [{"role": "user", "parts": [
            {"type": "text", "content": f"My SSN is {SSN}, where is order 1042?"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "text", "content": "It ships tomorrow."}]}],
    }))
    write(db, ("traces", traces_request([("billing", [chat])])),
          ("logs", logs_request("billing", [record])))
    return hex_trace("t"), hex_span("t", "chat gpt-4o-mini")


def test_a_traces_findings_count_those_of_its_logs(tmp_path):
    db = tmp_path / "agenttop.db"
    trace_id, _ = _event_only_trace(db)
    conn = open_reader(db)
    try:
        assert get_trace(conn, trace_id).finding_count == 1
        found = list_traces(conn, parse_trace_filter("findings"))
        assert [t.trace_id for t in found] == [trace_id]
    finally:
        conn.close()


def test_a_log_arriving_before_its_spans_still_counts(tmp_path):
    db = tmp_path / "agenttop.db"
    record = log_record("u", "root", at_ns=NOW, body=f"ssn {SSN}")
    write(db, ("logs", logs_request("billing", [record])),
          ("traces", traces_request([("billing", [span("u", "root")])])))
    conn = open_reader(db)
    try:
        assert get_trace(conn, hex_trace("u")).finding_count == 1
    finally:
        conn.close()


async def test_event_only_content_shows_as_the_spans_messages_and_in_the_log_list(tmp_path):
    db = tmp_path / "agenttop.db"
    trace_id, span_id = _event_only_trace(db)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        flat = _flat(await shown_detail(pilot, trace_id, span_id))
        assert (f"Messages · {EVENT} (log) (2) user: My SSN is [SSN], where is order 1042? "
                "assistant: It ships tomorrow.") in flat
        assert "(its messages are shown above)" in flat
        assert "Findings (1) pii ssn log attributes.gen_ai.input.messages" in flat
        await pilot.press("escape")

        screen = await open_screen(pilot, "6", LogsScreen)
        await wait_for(pilot, lambda: screen.table.row_count == 1, what="the event")
        text = screen_text(app)
        assert "user: My SSN is [SSN], where is order 1042?" in text
        screen.query_one(f"#{screen.FILTER_ID}").value = "1042"  # words of the content are found
        await wait_for(pilot, lambda: screen.total == 1, what="filtered")
        screen.query_one(f"#{screen.FILTER_ID}").value = "nowhere"
        await wait_for(pilot, lambda: screen.table.row_count == 0, what="nothing")

