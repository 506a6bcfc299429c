"""What real instrumentation libraries send, read right: fixtures recorded by
scripts/record_compat.py (tests/compat/*.json, with the library versions), replayed
through the real receiver, each span checked against what an engineer reading it would
say it is. The expectations are written from the spans, not copied from agenttop's output.

The agent setups run one support agent twice: its user types an SSN, a retriever and a
tool run, the model answers without repeating it; then a call or the tool fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agenttop.otlp.otlp_json import parse_message
from agenttop.store import open_reader
from agenttop.store.queries import span_detail
from agenttop.tui.widgets.span_detail import conversations
from tests.conftest import read_db
from tests.test_bad_input import LOGS, TRACES, call

COMPAT = Path(__file__).parent / "compat"

# The openai client's calls: fixture -> one row per span, in the order the library emitted
# them:
# (span name, layer, failure, model, provider, input tokens, output tokens, finish reasons)
EXPECTED = {
    # The official instrumentation, before its content moved to one details event: the
    # messages are GenAI events (log records with the chat span's ids), not attributes.
    "openai-v2": [
        ("chat gpt-4o-mini", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        ("embeddings text-embedding-3-small", "memory", None, "text-embedding-3-small",
         "openai", 5, None, None),
        ("chat gpt-4o-mini-ratelimit", "prompt", "rate_limit", "gpt-4o-mini-ratelimit",
         "openai", None, None, None),
        ("chat gpt-4o-mini-broken", "prompt", "server", "gpt-4o-mini-broken", "openai", None,
         None, None),
        ("chat gpt-4o-mini-badkey", "auth", "auth", "gpt-4o-mini-badkey", "openai", None,
         None, None),
    ],
    "openinference-openai": [
        ("ChatCompletion", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        # An embedding call: its model is in embedding.model_name.
        ("CreateEmbeddings", "memory", None, "text-embedding-3-small", "openai", 5, None,
         None),
        # Failed calls carry their model only inside llm.invocation_parameters (JSON).
        ("ChatCompletion", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", "openai", None,
         None, None),
        ("ChatCompletion", "prompt", "server", "gpt-4o-mini-broken", "openai", None, None,
         None),
        ("ChatCompletion", "auth", "auth", "gpt-4o-mini-badkey", "openai", None, None, None),
    ],
    # OpenLLMetry: GenAI attributes, spans named "openai.chat"; gen_ai.openai.api_base holds
    # the local server's address, which is no finding.
    "openllmetry-openai": [
        ("openai.chat", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        ("openai.embeddings", "memory", None, "text-embedding-3-small", "openai", 5, None,
         None),
        ("openai.chat", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", "openai", None, None,
         None),
        ("openai.chat", "prompt", "server", "gpt-4o-mini-broken", "openai", None, None, None),
        ("openai.chat", "auth", "auth", "gpt-4o-mini-badkey", "openai", None, None, None),
    ],
    "openlit": [
        ("chat gpt-4o-mini", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        ("embeddings text-embedding-3-small", "memory", None, "text-embedding-3-small",
         "openai", 5, None, None),
        # Failed calls carry no attributes: the span's name ("{operation} {model}", the
        # GenAI convention) and its exception say what failed.
        ("chat gpt-4o-mini-ratelimit", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", None,
         None, None, None),
        ("chat gpt-4o-mini-broken", "prompt", "server", "gpt-4o-mini-broken", None, None, None,
         None),
        ("chat gpt-4o-mini-badkey", "auth", "auth", "gpt-4o-mini-badkey", None, None, None,
         None),
    ],
}


# fixture -> {(span name, location, input | output | echo | ""): PII findings}: the SSN the
# user typed, wherever it went ("log ..." for a log record of the span).
CALL_FINDINGS = {
    "openai-v2": {(name, "log body.content", "input"): 1 for name in (
        "chat gpt-4o-mini", "chat gpt-4o-mini-ratelimit", "chat gpt-4o-mini-broken",
        "chat gpt-4o-mini-badkey")},
    "openinference-openai": {("ChatCompletion", "input.value", "input"): 4,
                             ("ChatCompletion", "llm.input_messages.0.message.content",
                              "input"): 4},
    "openllmetry-openai": {("openai.chat", "gen_ai.input.messages", "input"): 4},
    # Only the answered call carries its prompt (an attribute and an event).
    "openlit": {("chat gpt-4o-mini", "gen_ai.prompt", "input"): 1,
                ("chat gpt-4o-mini", "events[0].gen_ai.content.prompt:gen_ai.prompt",
                 "input"): 1},
}


def pii_findings(conn) -> dict[tuple[str, str, str], int]:
    """PII findings by (span name, location, side); each trace counts all of its own."""
    found: dict[tuple[str, str, str], int] = {}
    for name, location, side in conn.execute(
            "SELECT s.name, iif(f.signal = 'log', 'log ', '') || f.location, "
            "iif(f.echo, 'echo', f.direction) FROM findings AS f "
            "JOIN spans AS s USING (trace_id, span_id) WHERE f.kind = 'pii'"):
        found[name, location, side] = found.get((name, location, side), 0) + 1
    assert conn.execute(  # the trace list's PII column and findings filter see them all
        "SELECT count(*) FROM traces WHERE finding_count != "
        "(SELECT count(*) FROM findings AS f WHERE f.trace_id = traces.trace_id)"
    ).fetchone()[0] == 0
    return found


def replay(fixture: str, server) -> None:
    recorded = json.loads((COMPAT / f"{fixture}.json").read_text())
    assert recorded["versions"]  # which library versions emitted these shapes
    call(server, TRACES, parse_message("traces", recorded["request"]).SerializeToString())
    if "logs" in recorded:  # GenAI events
        call(server, LOGS, parse_message("logs", recorded["logs"]).SerializeToString())


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_recorded_calls_are_read_as_an_engineer_reads_them(fixture, server, db_path):
    replay(fixture, server)
    conn = read_db(db_path)
    rows = conn.execute(
        "SELECT name, layer, failure, genai FROM spans ORDER BY start_ns, rowid").fetchall()
    # A local model server's address is nobody's PII.
    assert pii_findings(conn) == CALL_FINDINGS[fixture]
    conn.close()
    got = []
    for name, layer, failure, genai in rows:
        g = json.loads(genai) if genai else {}
        got.append((name, layer, failure, g.get("model"), g.get("provider"),
                    g.get("input_tokens"), g.get("output_tokens"), g.get("finish_reasons")))
    assert got == EXPECTED[fixture]


# The agents: fixture -> one row per span, in start order: (span name, layer, failure,
# model, agent, session, input tokens, output tokens). Agent and session are the span's own
# or, when it has none, its nearest ancestor's.
P1, P2 = "01a23702-7b16-70ce-989b-9298965d54b7", "01a23702-7b8c-7658-8cd2-8fbcd6b9d78d"
AGENTS = {
    # OpenInference: each graph node is a span; a LangGraph node names the agent (inside
    # the JSON string attribute "metadata"), the session is session.id everywhere.
    "langgraph-openinference": [
        ("LangGraph", "runtime", None, None, None, "conv-7", None, None),
        ("retrieve", "runtime", None, None, "retrieve", "conv-7", None, None),
        ("VectorStoreRetriever", "memory", None, None, "retrieve", "conv-7", None, None),
        ("agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("route", "runtime", None, None, "agent", "conv-7", None, None),
        ("tools", "runtime", None, None, "tools", "conv-7", None, None),
        ("order_status", "tool", None, None, "tools", "conv-7", None, None),
        ("agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("route", "runtime", None, None, "agent", "conv-7", None, None),
        # The second run: the tool raises RuntimeError; the status descriptions of the
        # node and the graph hold the whole traceback, "fut.result(timeout)" included,
        # which is no timeout.
        ("LangGraph", "runtime", "error", None, None, "conv-7", None, None),
        ("retrieve", "runtime", None, None, "retrieve", "conv-7", None, None),
        ("VectorStoreRetriever", "memory", None, None, "retrieve", "conv-7", None, None),
        ("agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("route", "runtime", None, None, "agent", "conv-7", None, None),
        ("tools", "runtime", "error", None, "tools", "conv-7", None, None),
        ("order_status", "tool", "tool_error", None, "tools", "conv-7", None, None),
    ],
    # OpenLLMetry: the graph is an agent (invoke_agent LangGraph); its nodes are tasks whose
    # node name is an association property; the retriever is a vector_db_retrieve CLIENT
    # span named after the retriever class, which is no model.
    "langgraph-openllmetry": [
        ("invoke_agent LangGraph", "runtime", None, None, "LangGraph", "conv-7", None, None),
        ("LangGraph.workflow", "runtime", None, None, "LangGraph", "conv-7", None, None),
        ("execute_task retrieve", "runtime", None, None, "retrieve", "conv-7", None, None),
        ("vector_db_retrieve VectorStoreRetriever", "memory", None, None, "retrieve",
         "conv-7", None, None),
        ("execute_task agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI.chat", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("execute_task route", "runtime", None, None, "agent", "conv-7", None, None),
        ("execute_task tools", "runtime", None, None, "tools", "conv-7", None, None),
        ("execute_tool order_status", "tool", None, None, "tools", "conv-7", None, None),
        ("execute_task agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI.chat", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("execute_task route", "runtime", None, None, "agent", "conv-7", None, None),
        ("invoke_agent LangGraph", "runtime", "error", None, "LangGraph", "conv-7", None,
         None),
        ("LangGraph.workflow", "runtime", "error", None, "LangGraph", "conv-7", None, None),
        ("execute_task retrieve", "runtime", None, None, "retrieve", "conv-7", None, None),
        ("vector_db_retrieve VectorStoreRetriever", "memory", None, None, "retrieve",
         "conv-7", None, None),
        ("execute_task agent", "runtime", None, None, "agent", "conv-7", None, None),
        ("ChatOpenAI.chat", "prompt", None, "gpt-4o-mini", "agent", "conv-7", 21, 8),
        ("execute_task route", "runtime", None, None, "agent", "conv-7", None, None),
        ("execute_task tools", "runtime", "error", None, "tools", "conv-7", None, None),
        ("execute_tool order_status", "tool", "tool_error", None, "tools", "conv-7", None,
         None),
    ],
    # pydantic-ai: OTel GenAI conventions throughout; the conversation id is per run.
    "pydantic-ai": [
        ("invoke_agent support-agent", "runtime", None, None, "support-agent", P1, None, None),
        ("chat gpt-4o-mini", "prompt", None, "gpt-4o-mini", "support-agent", P1, 21, 8),
        ("execute_tool order_status", "tool", None, None, "support-agent", P1, None, None),
        ("chat gpt-4o-mini", "prompt", None, "gpt-4o-mini", "support-agent", P1, 21, 8),
        ("invoke_agent support-agent", "runtime", "rate_limit", None, "support-agent", P2,
         None, None),
        ("chat gpt-4o-mini-ratelimit", "prompt", "rate_limit", "gpt-4o-mini-ratelimit",
         "support-agent", P2, None, None),
    ],
    # The OpenAI Agents SDK under OpenInference: a workflow (an AGENT span with no name)
    # around a CHAIN, the agent's span (agent.name), turns, generations and the tool. The
    # SDK sends no session.
    "openai-agents": [
        ("Agent workflow", "runtime", None, None, None, None, None, None),
        ("Agent workflow", "runtime", None, None, None, None, None, None),
        ("support-agent", "runtime", None, None, "support-agent", None, None, None),
        ("turn", "runtime", None, None, "support-agent", None, None, None),
        ("generation", "prompt", None, "gpt-4o-mini", "support-agent", None, 21, 8),
        ("order_status", "tool", None, None, "support-agent", None, None, None),
        ("turn", "runtime", None, None, "support-agent", None, None, None),
        ("generation", "prompt", None, "gpt-4o-mini", "support-agent", None, 21, 8),
        ("Agent workflow", "runtime", None, None, None, None, None, None),
        ("Agent workflow", "runtime", None, None, None, None, None, None),
        ("support-agent", "runtime", "rate_limit", None, "support-agent", None, None, None),
        ("turn", "runtime", None, None, "support-agent", None, None, None),
        ("generation", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", "support-agent",
         None, None, None),
    ],
    # The MCP SDK's own SERVER spans, one trace per request: tools/call is a tool,
    # prompts/get a prompt, resources/read memory, protocol housekeeping other.
    "mcp": [
        ("server/discover", "other", None, None, None, None, None, None),
        ("tools/list", "other", None, None, None, None, None, None),
        ("tools/call order_status", "tool", None, None, None, None, None, None),
        ("tools/call cancel_order", "tool", "tool_error", None, None, None, None, None),
        ("prompts/get support_prompt", "prompt", None, None, None, None, None, None),
        ("resources/read", "memory", None, None, None, None, None, None),
    ],
    # OpenLLMetry's MCP spans (SDK 1): INTERNAL, named "{method}.mcp" with no method
    # attribute, tools as traceloop tool spans.
    "mcp-openllmetry": [
        ("initialize.mcp", "other", None, None, None, None, None, None),
        ("tools/list.mcp", "other", None, None, None, None, None, None),
        ("order_status.tool", "tool", None, None, None, None, None, None),
        ("cancel_order.tool", "tool", "tool_error", None, None, None, None, None),
        ("prompts/get.mcp", "prompt", None, None, None, None, None, None),
        ("resources/read.mcp", "memory", None, None, None, None, None, None),
    ],
}

# fixture -> {(span name, location, input | output | echo | ""): PII findings}: the SSN the
# user typed, wherever it went. Only the graph's final state repeats it as an output: an
# echo, never PII the model produced.
AGENT_FINDINGS = {
    "langgraph-openinference": {
        ("LangGraph", "input.value", "input"): 2,
        ("LangGraph", "llm.input_messages.0.message.content", "input"): 2,
        ("LangGraph", "output.value", "echo"): 1,
        **{(node, key, "input"): n
           for node, n in (("retrieve", 2), ("agent", 3), ("ChatOpenAI", 3), ("route", 3),
                           ("tools", 2))
           for key in ("input.value", "llm.input_messages.0.message.content")},
        ("VectorStoreRetriever", "input.value", "input"): 2,
    },
    "langgraph-openllmetry": {
        ("ChatOpenAI.chat", "gen_ai.input.messages", "input"): 3,
        **{(name, key, "input"): n
           for name, n in (("LangGraph.workflow", 2), ("execute_task retrieve", 2),
                           ("vector_db_retrieve VectorStoreRetriever", 2),
                           ("execute_task agent", 3), ("execute_task route", 3),
                           ("execute_task tools", 2))
           for key in ("traceloop.entity.input", "gen_ai.task.input")},
        ("LangGraph.workflow", "traceloop.entity.output", "echo"): 1,
        ("LangGraph.workflow", "gen_ai.task.output", "echo"): 1,
    },
    # The run's whole conversation is neither an input nor an output of one call.
    "pydantic-ai": {
        ("chat gpt-4o-mini", "gen_ai.input.messages", "input"): 2,
        ("invoke_agent support-agent", "pydantic_ai.all_messages", ""): 2,
    },
    # The endpoint in llm.invocation_parameters is no finding.
    "openai-agents": {("generation", "input.value", "input"): 3,
                      ("generation", "llm.input_messages.1.message.content", "input"): 3},
    "mcp": {},
    # The prompt's text repeats the question it was given: an echo.
    "mcp-openllmetry": {("prompts/get.mcp", "traceloop.entity.input", "input"): 1,
                        ("prompts/get.mcp", "traceloop.entity.output", "echo"): 1},
}


@pytest.mark.parametrize("fixture", sorted(AGENTS))
def test_recorded_agents_are_read_as_an_engineer_reads_them(fixture, server, db_path):
    replay(fixture, server)
    conn = open_reader(db_path)
    try:
        got = []
        for trace_id, span_id, name, layer, failure, genai in conn.execute(
                "SELECT trace_id, span_id, name, layer, failure, genai FROM spans "
                "ORDER BY start_ns, rowid"):
            own = json.loads(genai) if genai else {}
            inherited = span_detail(conn, trace_id, span_id).inherited
            agent, session = ((own.get(f) or inherited.get(f, (None,))[0])
                              for f in ("agent", "session"))
            got.append((name, layer, failure, own.get("model"), agent, session,
                        own.get("input_tokens"), own.get("output_tokens")))
        findings = pii_findings(conn)
    finally:
        conn.close()
    assert got == AGENTS[fixture]
    assert findings == AGENT_FINDINGS[fixture]


# fixture -> {span name: [(conversation shown, its roles)]} for the first span of each name
# that holds one: messages as the span detail shows them, wherever the library put them.
MESSAGES = {
    # As GenAI events (log records), one message each.
    "openai-v2": {
        "chat gpt-4o-mini": [("gen_ai.user.message (log)", ["user"]),
                             ("gen_ai.choice (log)", ["assistant"])],
        **{f"chat gpt-4o-mini-{m}": [("gen_ai.user.message (log)", ["user"])]
           for m in ("ratelimit", "broken", "badkey")},
    },
    # Flattened into llm.input_messages.N.message.* keys.
    "openinference-openai": {
        "ChatCompletion": [("llm.input_messages", ["user"]),
                           ("llm.output_messages", ["assistant"])],
    },
    # The embedding's input text is sent as a user message.
    "openllmetry-openai": {
        "openai.chat": [("gen_ai.input.messages", ["user"]),
                        ("gen_ai.output.messages", ["assistant"])],
        "openai.embeddings": [("gen_ai.input.messages", ["user"])],
    },
    "openlit": {},  # the prompt and completion as plain text
    "langgraph-openinference": {
        **{name: [("llm.input_messages", ["user"])]
           for name in ("LangGraph", "retrieve", "agent", "route", "tools")},
        "ChatOpenAI": [("llm.input_messages", ["user"]),
                       ("llm.output_messages", ["assistant"])],
    },
    "langgraph-openllmetry": {
        "ChatOpenAI.chat": [("gen_ai.input.messages", ["user"]),
                            ("gen_ai.output.messages", ["assistant"])],
    },
    # The agent run holds the whole conversation: the tool's return is a user message.
    "pydantic-ai": {
        "invoke_agent support-agent": [
            ("gen_ai.system_instructions", ["system"]),
            ("pydantic_ai.all_messages", ["user", "assistant", "user", "assistant"])],
        "chat gpt-4o-mini": [("gen_ai.system_instructions", ["system"]),
                             ("gen_ai.input.messages", ["user"]),
                             ("gen_ai.output.messages", ["assistant"])],
    },
    "openai-agents": {
        "generation": [("llm.input_messages", ["system", "user"]),
                       ("llm.output_messages", ["assistant"])],
    },
    "mcp": {},
    "mcp-openllmetry": {},
}


@pytest.mark.parametrize("fixture", sorted(MESSAGES))
def test_recorded_conversations_show_as_messages(fixture, server, db_path):
    replay(fixture, server)
    conn = open_reader(db_path)
    shown: dict[str, list] = {}
    try:
        for trace_id, span_id, name in conn.execute(
                "SELECT trace_id, span_id, name FROM spans ORDER BY start_ns, rowid"):
            found, _ = conversations(span_detail(conn, trace_id, span_id))
            if found and name not in shown:
                shown[name] = [(title, [role for role, _ in lines])
                               for title, _, lines in found]
    finally:
        conn.close()
    assert shown == MESSAGES[fixture]
