"""Who calls what: agent runs, tool calls and model calls counted under the agent that made
them, through the real writer, whatever order the spans arrive in."""

from __future__ import annotations

from pathlib import Path

import pytest

from agenttop.analysis.buckets import duration_bucket
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.calls import PENDING_NS, Subject, calls_window, durations, pending_count
from agenttop.store.queries import list_traces, parse_trace_filter
from agenttop.store.writer import Writer
from tests.tui.fixtures import CLIENT, MINUTE_NS, NOW, span, traces_request, write

FIRST, LAST = NOW // MINUTE_NS - 60, NOW // MINUTE_NS


def planner_trace(trace: str) -> dict[str, object]:
    """A planner agent calling a model and a tool, then a researcher sub-agent that calls
    a model (failing on a rate limit) and the same tool; spans by key."""
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10, "gen_ai.server.time_to_first_token": 0.25}
    def call(key: str, name: str, **kw):
        return key, span(trace, name, key=key, **kw)

    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    return dict([
        call("root", "invoke_agent planner", duration_ms=900, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        call("step", "plan step", parent="root", start_ms=1, duration_ms=800),
        call("chat1", "chat gpt-4o-mini", parent="step", start_ms=2, duration_ms=100,
             kind=CLIENT, attributes=chat),
        call("tool1", "execute_tool search", parent="step", start_ms=110, duration_ms=50,
             attributes=tool),
        call("sub", "invoke_agent researcher", parent="step", start_ms=200, duration_ms=500,
             attributes={"gen_ai.operation.name": "invoke_agent",
                         "gen_ai.agent.name": "researcher"}),
        call("chat2", "chat gpt-4o", parent="sub", start_ms=210, duration_ms=30, kind=CLIENT,
             error="429 Too Many Requests",
             attributes={**chat, "gen_ai.request.model": "gpt-4o",
                         "error.type": "RateLimitError"}),
        call("tool2", "execute_tool search", parent="sub", start_ms=300, duration_ms=40,
             attributes=tool),
    ])


def window(db: Path):
    conn = open_reader(db)
    try:
        w = calls_window(conn, FIRST, LAST)
        w.durations = durations(conn, FIRST, LAST, w.stats)
        return w, pending_count(conn)
    finally:
        conn.close()


def expected_graph(w) -> None:
    planner, researcher = Subject("agent", "planner"), Subject("agent", "researcher")
    assert w.stats[planner].calls == 2 and w.stats[planner].callers == {"": 2}
    assert w.stats[researcher].calls == 2 and w.stats[researcher].callers == {"planner": 2}
    search = w.stats[Subject("tool", "search")]
    assert search.calls == 4 and search.callers == {"planner": 2, "researcher": 2}
    mini = w.stats[Subject("model", "gpt-4o-mini", "openai")]
    assert (mini.calls, mini.tokens, mini.ttft_count) == (
        2, {"input": 200, "output": 20}, 2)
    assert mini.ttft_sum_s == pytest.approx(0.5)
    big = w.stats[Subject("model", "gpt-4o", "openai")]
    assert (big.calls, big.failures, big.by_failure) == (2, 2, {"rate_limit": 2})
    assert sum(w.durations[big.subject].values()) == 2  # 30 ms each: one bucket
    assert list(w.durations[big.subject]) == [duration_bucket(30 * 10**6)]
    assert {(e.callee.kind, e.callee.name, e.calls) for e in w.edges["planner"]} == {
        ("model", "gpt-4o-mini", 2), ("tool", "search", 2), ("agent", "researcher", 2)}
    assert {(e.callee.kind, e.callee.name, e.calls, e.failures)
            for e in w.edges["researcher"]} == {("model", "gpt-4o", 2, 2),
                                                ("tool", "search", 2, 0)}
    assert [e.callee.name for e in w.edges[""]] == ["planner"]


def test_calls_go_to_their_agent_when_parents_come_first(tmp_path: Path):
    db = tmp_path / "a.db"
    spans = [*planner_trace("t1").values(), *planner_trace("t2").values()]
    write(db, ("traces", traces_request([("svc", spans)])))
    w, pending = window(db)
    expected_graph(w)
    assert pending == 0


def test_calls_move_to_their_agent_when_the_parents_arrive_last(tmp_path: Path):
    # As exporters send them: each span when it ends, children first, in three requests.
    db = tmp_path / "a.db"
    order = [("chat2", "tool2"), ("chat1", "tool1", "sub"), ("step", "root")]
    traces = [planner_trace("t1"), planner_trace("t2")]
    write(db, *[("traces", traces_request([("svc", [t[k] for t in traces for k in keys])]))
                for keys in order[:2]])
    w, pending = window(db)
    # The researcher's calls found their agent once it came; the planner's step, tool
    # and sub-agent wait for the step and root, counted under no agent meanwhile.
    assert pending == 6
    assert w.edges["researcher"] and {e.callee.name for e in w.edges[""]} == {
        "researcher", "gpt-4o-mini", "search"}
    assert w.stats[Subject("agent", "researcher")].callers == {"": 2}
    write(db, ("traces", traces_request([("svc", [t[k] for t in traces for k in order[2]])])))
    w, pending = window(db)
    expected_graph(w)
    assert pending == 0


def test_a_langgraph_node_is_one_run_however_many_spans_name_it(tmp_path: Path):
    # Every span inside a LangGraph node carries the node's name as its agent.
    db = tmp_path / "a.db"
    node = {"metadata.langgraph_node": "writer"}
    spans = [
        span("g", "LangGraph", duration_ms=50),
        span("g", "writer", parent="LangGraph", start_ms=1, duration_ms=40, attributes=node),
        span("g", "ChatOpenAI", parent="writer", start_ms=2, duration_ms=30, kind=CLIENT,
             attributes={**node, "gen_ai.request.model": "gpt-4o-mini"}),
    ]
    write(db, ("traces", traces_request([("svc", list(reversed(spans)))])))
    w, _ = window(db)
    assert w.stats[Subject("agent", "writer")].calls == 1
    assert [(e.callee.name, e.calls) for e in w.edges["writer"]] == [("gpt-4o-mini", 1)]


def test_tool_filter_lists_exactly_the_traces_that_called_the_tool(tmp_path: Path):
    db = tmp_path / "a.db"
    other = [span("t3", "invoke_agent planner", attributes={"gen_ai.agent.name": "planner"})]
    write(db, ("traces", traces_request([("svc", [*planner_trace("t1").values(), *other])])))
    conn = open_reader(db)
    try:
        found = list_traces(conn, parse_trace_filter("tool:search"))
        assert len(found) == 1 and found[0].root_name == "invoke_agent planner"
        assert len(list_traces(conn, parse_trace_filter("agent:planner"))) == 2
        assert list_traces(conn, parse_trace_filter("tool:sear")) == []
    finally:
        conn.close()


def test_a_call_whose_parent_never_comes_stays_under_no_agent_after_an_hour(tmp_path: Path):
    db = tmp_path / "a.db"
    trace = planner_trace("t1")
    clock = [NOW]
    writer = Writer(open_writer(db, synchronous="NORMAL"), clock=lambda: clock[0])
    try:
        def send(*keys: str) -> None:
            body = traces_request([("svc", [trace[k] for k in keys])])
            writer._write([decode("traces", body, clock[0])])

        send("chat2", "tool2")  # their agent span (sub) is late
        clock[0] += PENDING_NS + 1
        send("chat1")  # any later write lets the hour-old calls go
        send("sub", "tool1", "step", "root")
    finally:
        writer.close()
    w, pending = window(db)
    assert pending == 0
    # The researcher's model and tool calls stay where they were counted.
    assert {(e.callee.name, e.calls) for e in w.edges[""]} == {
        ("planner", 1), ("gpt-4o", 1), ("search", 1)}
    assert w.stats[Subject("agent", "researcher")].callers == {"planner": 1}
