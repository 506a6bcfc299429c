"""Headless parts of the TUI: the trace tree's shape, the filter, the queries, the states."""

from __future__ import annotations

from agenttop.analysis.health import LayerHealth
from agenttop.analysis.rules import load_rules
from agenttop.store import open_reader
from agenttop.store.queries import (
    SpanNode,
    count_traces,
    get_trace,
    list_traces,
    parse_trace_filter,
    span_detail,
    trace_spans,
)
from agenttop.store.rollups import minute_series
from agenttop.tui import fmt
from agenttop.tui.health_state import layer_state
from agenttop.tui.trace_model import CYCLE_KEY, MISSING_PREFIX, TOP, build_model
from tests.tui.fixtures import NOW, hex_span, hex_trace, span, traces_request, write


def node(span_id: str, parent: str | None, start: int = 0) -> SpanNode:
    return SpanNode(span_id, parent, span_id, 1, "svc", start, 10, 0, "other", None, 0)


def test_model_nests_children_in_start_order():
    model = build_model([node("r", None, 0), node("b", "r", 2), node("a", "r", 1),
                         node("c", "a", 3)])
    assert model.kids(TOP) == ["r"]
    assert model.kids("r") == ["b", "a"]  # the given (start) order is kept
    assert model.kids("a") == ["c"] and model.kids("c") == []
    assert not model.placeholders and not model.orphans


def test_orphans_hang_under_a_placeholder_under_the_root():
    model = build_model([node("r", None), node("x", "gone"), node("y", "x")])
    key = MISSING_PREFIX + "gone"
    assert model.kids("r") == [key]
    assert model.kids(key) == ["x"] and model.kids("x") == ["y"]
    assert model.orphans == {"x"}
    without_root = build_model([node("x", "gone"), node("z", "gone")])
    assert without_root.kids(TOP) == [key] and without_root.kids(key) == ["x", "z"]


def test_cycles_are_shown_once_and_end():
    model = build_model([node("r", None), node("s", "s"), node("a", "b"), node("b", "a"),
                         node("c", "a")])
    assert model.kids(TOP) == ["r", CYCLE_KEY]
    placed = []
    stack = [TOP]
    while stack:  # every span is reachable exactly once
        key = stack.pop()
        for child in model.kids(key):
            placed.append(child)
            stack.append(child)
    spans = [k for k in placed if k in model.spans]
    assert sorted(spans) == ["a", "b", "c", "r", "s"] and len(spans) == 5


def test_a_deep_chain_builds_without_recursion():
    chain = [node("0", None)] + [node(str(i), str(i - 1)) for i in range(1, 5000)]
    model = build_model(chain)
    assert model.kids("4998") == ["4999"]


def test_filter_parsing():
    f = parse_trace_filter('checkout service:api LAYER:Tool errors findings "two words" x:y')
    assert f.words == ("checkout", "two words", "x:y")
    assert f.services == ("api",) and f.layers == ("tool",)
    assert f.errors and f.findings and not f.problems
    assert parse_trace_filter("").empty
    assert parse_trace_filter("layer:bogus").problems


def test_trace_queries_window_filter_and_detail(demo_template):
    conn = open_reader(demo_template)
    newest = list_traces(conn, limit=5)
    assert [r.start_ns for r in newest] == sorted((r.start_ns for r in newest), reverse=True)
    assert newest[0].root_name is None  # the orphaned trace: root not received
    assert list_traces(conn, limit=5, offset=5)[0].start_ns < newest[-1].start_ns
    assert count_traces(conn) == 25 and count_traces(conn, cap=10) == 10
    assert count_traces(conn, parse_trace_filter("layer:other")) == 8
    assert count_traces(conn, parse_trace_filter("errors")) == 5
    assert count_traces(conn, parse_trace_filter("findings")) > 0
    assert count_traces(conn, parse_trace_filter(hex_trace("run-3")[:10])) == 1
    assert count_traces(conn, parse_trace_filter("service:auth-gate")) == 24
    assert count_traces(conn, parse_trace_filter("100%_")) == 0  # LIKE wildcards escaped

    trace = hex_trace("run-0")
    row = get_trace(conn, trace)
    assert row is not None and row.root_name == "invoke_agent support"
    spans = trace_spans(conn, trace)
    assert len(spans) == row.span_count and spans[0].parent_span_id is None
    detail = span_detail(conn, trace, hex_span("run-0", "chat gpt-4o"))
    assert detail is not None and detail.attributes["gen_ai.request.model"] == "gpt-4o"
    assert [f.pattern for f in detail.findings] == ["email"]
    assert len(detail.logs) == 1 and detail.resource["service.name"] == "support-agent"
    assert span_detail(conn, trace, "0" * 16) is None

    minutes = minute_series(conn, NOW, 15)
    assert sum(minutes["prompt"][0]) == 25 and len(minutes["prompt"][0]) == 15


def _health(layer: str, spans: int, failures: int, p99_ms: float | None = 10.0) -> LayerHealth:
    return LayerHealth(layer=layer, window_s=300, spans=spans, failures=failures,
                       failure_rate=failures / spans if spans else None, by_failure={},
                       throughput=spans / 300, p50_ms=p99_ms, p95_ms=p99_ms, p99_ms=p99_ms,
                       max_ms=p99_ms, input_tokens=0, output_tokens=0)


def test_layer_states_follow_the_rules():
    rules = load_rules(None)
    assert layer_state(_health("prompt", 100, 0), rules).state == "ok"
    assert layer_state(_health("prompt", 100, 1), rules).state == "warn"  # 1 %: elevated
    assert layer_state(_health("prompt", 100, 6), rules).state == "critical"  # > 5 %
    short = layer_state(_health("prompt", 5, 3), rules)  # too few samples
    assert short.state == "warn" and short.reason == "needs 20 spans, has 5"
    assert layer_state(_health("tool", 100, 3), rules).state == "critical"  # > 2 %
    assert layer_state(_health("memory", 10, 1), rules).state == "critical"  # any failure
    assert layer_state(_health("auth", 10, 1), rules).state == "critical"
    assert layer_state(_health("runtime", 100, 0, 6000), rules).state == "critical"
    assert layer_state(_health("runtime", 100, 0, 3000), rules).state == "warn"
    assert layer_state(_health("runtime", 0, 0, None), rules).state == "ok"
    firing = layer_state(_health("tool", 0, 0), rules, ["tool-error-rate"])
    assert firing.state == "critical" and "tool-error-rate" in firing.reason


def test_formatting():
    assert fmt.duration(850_000) == "850µs" and fmt.duration(2_250_000_000) == "2.25s"
    assert fmt.duration(125 * 10**9) == "2m05s"
    day = 86400 * 10**9
    assert fmt.duration(10 * day + 4 * 3600 * 10**9) == "10d04h"
    assert fmt.duration(498946 * 3600 * 10**9) == "20789d"  # a clock at 1970: days, whole
    assert fmt.percent(0.02) == "2%" and fmt.percent(0.062) == "6.2%" and fmt.percent(0) == "0%"
    assert fmt.rate(0.03) == "0.03/s" and fmt.rate(12.4) == "12/s" and fmt.rate(None) == "–"
    assert fmt.size(172_032) == "172 kB" and fmt.count(12_345) == "12.3k"
    assert fmt.sparkline([0, 1, 4], 3) == "▁▃█"


def test_failed_and_slow_filters_list_exactly_the_traces_that_breached(tmp_path):
    from agenttop.store import open_reader
    from tests.tui.fixtures import hex_trace, span, traces_request, write

    def run(name: str, *, tool_error: str | None = None, chat_error: str | None = None,
            root_ms: float = 100) -> tuple[str, list]:
        return ("agent", [
            span(name, "invoke_agent", key="root", duration_ms=root_ms, kind=2),
            span(name, "chat gpt-4o", parent="root", error=chat_error,
                 attributes={"gen_ai.operation.name": "chat"}),
            span(name, "execute_tool search", parent="root", error=tool_error,
                 attributes={"gen_ai.operation.name": "execute_tool",
                             **({"error.type": "TimeoutError"} if tool_error else {})}),
        ])

    db = tmp_path / "a.db"
    write(db, ("traces", traces_request([
        run("tool-failed", tool_error="timed out"),
        run("prompt-failed", chat_error="schema"),  # its tool call succeeded
        run("fine"),
        run("slow", root_ms=6_000),
    ])))
    conn = open_reader(db)
    try:
        def shown(query: str) -> set[str]:
            return {r.trace_id for r in list_traces(conn, parse_trace_filter(query))}

        # What "layer:tool errors" lists: a failed trace that touches the tool layer.
        assert shown("layer:tool errors") == {hex_trace("tool-failed"), hex_trace("prompt-failed")}
        assert shown("failed:tool") == {hex_trace("tool-failed")}
        assert shown("failed:tool:timeout") == {hex_trace("tool-failed")}
        assert shown("failed:tool:auth") == set()
        assert shown("failed:prompt") == {hex_trace("prompt-failed")}
        assert shown("slow:runtime>5s") == {hex_trace("slow")}
        assert shown("slow:runtime>5000ms") == {hex_trace("slow")}
        assert parse_trace_filter("slow:runtime").problems
        assert shown("slow:runtime") == set()
        assert parse_trace_filter("failed:tools").problems == (
            "no layer 'tools' (layers: prompt, tool, memory, runtime, auth, other)",)
        # A filter that does not parse lists nothing (and says why), never everything.
        assert parse_trace_filter('""').problems == ('"" is empty text',)
        assert shown('""') == set() and shown('fine ""') == set()
        assert parse_trace_filter("   ").empty and len(shown("   ")) == 4
    finally:
        conn.close()


def test_a_span_without_agent_or_session_takes_its_nearest_ancestors(tmp_path):
    db = tmp_path / "agenttop.db"
    write(db, ("traces", traces_request([("svc", [
        span("t", "invoke_agent planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": "conv-1"}),
        span("t", "invoke_agent writer", parent="invoke_agent planner", start_ms=1,
             attributes={"gen_ai.operation.name": "invoke_agent",
                         "gen_ai.agent.name": "writer"}),
        span("t", "chat gpt-4o", parent="invoke_agent writer", start_ms=2,
             attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
        # A parent cycle (a broken client) ends the walk instead of looping.
        span("c", "a", parent="b"), span("c", "b", parent="a"),
    ])])))
    conn = open_reader(db)
    try:
        chat = span_detail(conn, hex_trace("t"), hex_span("t", "chat gpt-4o"))
        writer = span_detail(conn, hex_trace("t"), hex_span("t", "invoke_agent writer"))
        root = span_detail(conn, hex_trace("t"), hex_span("t", "invoke_agent planner"))
        looped = span_detail(conn, hex_trace("c"), hex_span("c", "a"))
    finally:
        conn.close()
    assert chat.inherited == {"agent": ("writer", "invoke_agent writer"),
                              "session": ("conv-1", "invoke_agent planner")}
    assert writer.inherited == {"session": ("conv-1", "invoke_agent planner")}
    assert root.inherited == {} and looped.inherited == {}
