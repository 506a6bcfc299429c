"""Record what real instrumentation libraries emit, as OTLP/JSON fixtures for
tests/test_compat.py.

Each setup runs one library against a fake OpenAI-compatible server started on loopback
(chat completions with usage, a tool call when tools are offered, embeddings, and errors
429, 500 and 401 for the models named so), collects the spans in memory and writes them,
with the library versions, to ``tests/compat/SETUP.json``.  The ``openai`` client setups
make a chat, an embedding and three failing chats; the agent setups (pydantic-ai, a
LangGraph graph under OpenInference or OpenLLMetry, the OpenAI Agents SDK, the MCP SDK
alone or under OpenLLMetry) run a small support agent whose user types an SSN, with a
tool, a retriever, and a failing call or tool.

Not run in CI: its dependencies are heavy, and the libraries disagree on the versions of
what they share, so each setup gets a virtualenv of its own. To re-record one after a
library changes:

    python3 -m venv env && env/bin/pip install opentelemetry-sdk \
        opentelemetry-exporter-otlp-proto-common PACKAGES
    env/bin/python scripts/record_compat.py SETUP

where PACKAGES is, per setup: openai-v2: "openai<2" "wrapt<2"
"opentelemetry-instrumentation-openai-v2==2.2b0" (later releases need a newer
opentelemetry-util-genai than is published);
openinference-openai: openai openinference-instrumentation-openai; openllmetry-openai:
openai opentelemetry-instrumentation-openai; openlit: openlit
"openai<2" "opentelemetry-sdk<1.38"; pydantic-ai: "pydantic-ai-slim[openai]";
langgraph-openinference: langgraph langchain-openai numpy
openinference-instrumentation-langchain; langgraph-openllmetry: langgraph langchain-openai
numpy opentelemetry-instrumentation-langchain; openai-agents: openai-agents
openinference-instrumentation-openai-agents; mcp: mcp; mcp-openllmetry: "mcp<2"
opentelemetry-instrumentation-mcp. Then read the new fixture span by span
and update its expectations in tests/test_compat.py where the library's shapes changed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import json
import subprocess
import sys
import sysconfig
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "compat"
# The model name tells the fake server how to answer.
FAILURES = {"gpt-4o-mini-ratelimit": 429, "gpt-4o-mini-broken": 500, "gpt-4o-mini-badkey": 401}
# What the agents are asked, with PII a user might type; the model never repeats it.
QUESTION = "Where is my order 1042? My SSN is 123-45-6789."
ANSWER = "Your order 1042 ships tomorrow."


class FakeOpenAI(BaseHTTPRequestHandler):
    """Chat completions (with usage, and a tool call when tools are offered and none has
    been answered yet) and embeddings; errors as the model name asks."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - the handler's name
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        model = request.get("model", "")
        if model in FAILURES:
            status = FAILURES[model]
            self._reply(status, {"error": {"message": f"fake error {status}",
                                           "type": "fake", "code": str(status)}})
            return
        if self.path.endswith("/embeddings"):
            texts = request.get("input")
            texts = texts if isinstance(texts, list) else [texts]
            self._reply(200, {"object": "list", "model": model, "data": [
                {"object": "embedding", "index": i, "embedding": _embed(str(t))}
                for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": 5 * len(texts), "total_tokens": 5 * len(texts)}})
            return
        messages = request.get("messages") or [{}]
        tools = request.get("tools") or []
        if tools and messages[-1].get("role") != "tool":
            name = tools[0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": name, "arguments": json.dumps({"order_id": "1042"})}}]}
            reason = "tool_calls"
        else:
            message = {"role": "assistant", "content": ANSWER}
            reason = "stop"
        self._reply(200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "finish_reason": reason,
                                         "message": message}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 8, "total_tokens": 29}})


def _embed(text: str) -> list[float]:
    """A deterministic three-number embedding, so retrieval ranks the same every run."""
    return [float(text.count(c)) + 1.0 for c in "aeo"]


def instrument(setup: str, provider, logger_provider) -> list[str]:
    """Instrument the openai client with one library; the packages whose versions count."""
    if setup == "openai-v2":
        import os

        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        # Content is sent only as GenAI events, which are log records.
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        OpenAIInstrumentor().instrument(tracer_provider=provider,
                                        logger_provider=logger_provider)
        return ["opentelemetry-instrumentation-openai-v2", "openai"]
    if setup == "openinference-openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return ["openinference-instrumentation-openai", "openai"]
    if setup == "openllmetry-openai":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return ["opentelemetry-instrumentation-openai", "openai"]
    if setup == "openlit":
        import openlit

        openlit.init(tracer=provider.get_tracer("openlit"), disable_metrics=True,
                     disable_batch=True)
        return ["openlit", "openai"]
    raise SystemExit(f"unknown setup {setup!r}")


def openai_calls(base_url: str) -> None:
    """The calls of a plain ``openai`` client: a chat, an embedding, three failures."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
    messages = [{"role": "user", "content": QUESTION}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    client.embeddings.create(model="text-embedding-3-small", input="order 1042")
    for model in FAILURES:
        with contextlib.suppress(openai.APIError):  # the failure is what is recorded
            client.chat.completions.create(model=model, messages=messages)


def pydantic_ai(provider, base_url: str) -> list[str]:
    """An agent with a tool, answering once, then failing on a rate-limited model."""
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    for model in ("gpt-4o-mini", "gpt-4o-mini-ratelimit"):
        agent = Agent(
            OpenAIChatModel(model, provider=OpenAIProvider(base_url=base_url, api_key="sk-t")),
            name="support-agent", instructions="Answer questions about orders.")

        @agent.tool_plain
        def order_status(order_id: str) -> str:
            """Where an order is."""
            return f"order {order_id}: shipped"

        with contextlib.suppress(Exception):  # the failure is what is recorded
            agent.run_sync(QUESTION)
    return ["pydantic-ai-slim", "openai"]


def langgraph_agent(base_url: str):
    """A LangGraph graph: retrieve order notes, then a model that calls a tool.

    Invoked twice in a conversation: once answered, once with the tool failing.
    """
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    embeddings = OpenAIEmbeddings(model="text-embedding-3-small", base_url=base_url,
                                  api_key="sk-test", check_embedding_ctx_length=False)
    store = InMemoryVectorStore.from_texts(
        ["Orders ship within two days.", "Refunds take a week."], embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 2})
    failing = {"on": False}

    @tool
    def order_status(order_id: str) -> str:
        """Where an order is."""
        if failing["on"]:
            raise RuntimeError("order service refused connection for order " + order_id)
        return f"order {order_id}: shipped"

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-test",
                     max_retries=0).bind_tools([order_status])

    def retrieve(state):  # no annotations: LangGraph resolves them in its own module
        retriever.invoke(state["messages"][-1].content)
        return {}

    def agent(state):
        return {"messages": [llm.invoke(state["messages"])]}

    def route(state):
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("retrieve", retrieve)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([order_status], handle_tool_errors=False))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "agent")
    graph.add_conditional_edges("agent", route)
    graph.add_edge("tools", "agent")
    app = graph.compile()
    config = {"configurable": {"thread_id": "conv-7"}, "metadata": {"session_id": "conv-7"}}

    def run() -> None:
        app.invoke({"messages": [HumanMessage(QUESTION)]}, config)
        failing["on"] = True
        with contextlib.suppress(RuntimeError):  # the failure is what is recorded
            app.invoke({"messages": [HumanMessage(QUESTION)]}, config)

    return run


def langgraph_openinference(provider, base_url: str) -> list[str]:
    from openinference.instrumentation import using_session
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
    with using_session("conv-7"):
        langgraph_agent(base_url)()
    return ["openinference-instrumentation-langchain", "langgraph", "langchain-openai"]


def langgraph_openllmetry(provider, base_url: str) -> list[str]:
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    LangchainInstrumentor().instrument(tracer_provider=provider)
    langgraph_agent(base_url)()
    return ["opentelemetry-instrumentation-langchain", "langgraph", "langchain-openai"]


def openai_agents(provider, base_url: str) -> list[str]:
    """The OpenAI Agents SDK under OpenInference: an agent with a tool, then one whose
    model is rate-limited."""
    from agents import (
        Agent,
        Runner,
        function_tool,
        set_default_openai_api,
        set_default_openai_client,
        set_tracing_export_api_key,
    )
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    set_default_openai_client(AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0),
                              use_for_tracing=False)
    set_tracing_export_api_key("")  # the SDK's own exporter to OpenAI stays idle
    set_default_openai_api("chat_completions")

    @function_tool
    def order_status(order_id: str) -> str:
        """Where an order is."""
        return f"order {order_id}: shipped"

    for model in ("gpt-4o-mini", "gpt-4o-mini-ratelimit"):
        agent = Agent(name="support-agent", instructions="Answer questions about orders.",
                      model=model, tools=[order_status])
        with contextlib.suppress(Exception):  # the failure is what is recorded
            Runner.run_sync(agent, QUESTION)
    return ["openinference-instrumentation-openai-agents", "openai-agents", "openai"]


def mcp_session() -> None:
    """An in-process MCP server and client making every kind of call."""
    import asyncio

    try:  # MCP SDK 2
        from mcp.client import Client
        from mcp.server.mcpserver import MCPServer
    except ImportError:  # MCP SDK 1, which OpenLLMetry's instrumentation still needs
        from mcp.server.fastmcp import FastMCP as MCPServer
        from mcp.shared.memory import create_connected_server_and_client_session

        def Client(server):  # noqa: N802 - stands in for the SDK 2 class
            return create_connected_server_and_client_session(server._mcp_server)

    server = MCPServer("orders")

    @server.tool()
    def order_status(order_id: str) -> str:
        """Where an order is."""
        return f"order {order_id}: shipped"

    @server.tool()
    def cancel_order(order_id: str) -> str:
        """Cancel an order."""
        raise RuntimeError("order service refused connection for order " + order_id)

    @server.prompt()
    def support_prompt(question: str) -> str:
        """How to answer a customer."""
        return f"Answer the customer politely: {question}"

    @server.resource("orders://{order_id}")
    def order(order_id: str) -> str:
        """An order's notes."""
        return f"order {order_id}: two items, paid"

    async def session() -> None:
        async with Client(server) as client:
            await client.list_tools()
            await client.call_tool("order_status", {"order_id": "1042"})
            with contextlib.suppress(Exception):  # the failure is what is recorded
                await client.call_tool("cancel_order", {"order_id": "1042"})
            await client.get_prompt("support_prompt", {"question": QUESTION})
            await client.read_resource("orders://1042")

    asyncio.run(session())


def mcp_native(provider, base_url: str) -> list[str]:
    """The MCP SDK's own spans."""
    from opentelemetry import trace

    trace.set_tracer_provider(provider)  # the SDK traces through the global provider
    mcp_session()
    return ["mcp"]


def mcp_openllmetry(provider, base_url: str) -> list[str]:
    """OpenLLMetry's MCP instrumentation (the SDK's own spans go nowhere here)."""
    from opentelemetry.instrumentation.mcp import McpInstrumentor

    McpInstrumentor().instrument(tracer_provider=provider)
    mcp_session()
    return ["opentelemetry-instrumentation-mcp", "mcp"]


# setup -> run it against the fake server with this tracer provider; the packages whose
# versions count.
AGENTS = {
    "pydantic-ai": pydantic_ai,
    "langgraph-openinference": langgraph_openinference,
    "langgraph-openllmetry": langgraph_openllmetry,
    "openai-agents": openai_agents,
    "mcp": mcp_native,
    "mcp-openllmetry": mcp_openllmetry,
}
SETUPS = ("openai-v2", "openinference-openai", "openllmetry-openai", "openlit", *AGENTS)


def record(setup: str, base_url: str) -> Path:
    from opentelemetry.exporter.otlp.proto.common._internal._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    try:
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    except ImportError:  # SDK before 1.39
        from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogRecordExporter

    resource = Resource.create({"service.name": f"compat-{setup}"})
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    if setup in AGENTS:
        packages = AGENTS[setup](provider, base_url)
    else:
        packages = instrument(setup, provider, logger_provider)
        openai_calls(base_url)
    provider.force_flush()
    logger_provider.force_flush()
    fixture = {
        "versions": {p: importlib.metadata.version(p) for p in packages},
        "request": _as_json(encode_spans(exporter.get_finished_spans())),
    }
    logs = log_exporter.get_finished_logs()
    if logs:  # GenAI events: content some instrumentations send only this way
        fixture["logs"] = _as_json(encode_logs(logs))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{setup}.json"
    path.write_text(_scrub(json.dumps(fixture, indent=1)) + "\n")
    return path


def _scrub(text: str) -> str:
    """Stack traces name files where this machine keeps them; fixtures name none."""
    paths = sysconfig.get_paths()
    for where, name in ((paths["purelib"], "<site-packages>"), (paths["stdlib"], "<stdlib>"),
                        (str(OUT.parent.parent), "<project>")):
        text = text.replace(where, name)
    return text


def _as_json(request) -> dict:
    from google.protobuf import json_format

    return _hex_ids(json_format.MessageToDict(request, use_integers_for_enums=True))


def _hex_ids(value: object) -> object:
    """OTLP/JSON: trace and span ids as hex, not protobuf JSON's base64."""
    if isinstance(value, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                    and isinstance(v, str) else _hex_ids(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setups", nargs="*", metavar="SETUP",
                        help=f"one or more of {', '.join(SETUPS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.setups) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setups: {', '.join(sorted(unknown))}")
    args.setups = args.setups or list(SETUPS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    failed = []
    for setup in args.setups:
        # One library per process: instrumentors patch the openai module for good.
        if len(args.setups) > 1:
            if subprocess.run([sys.executable, __file__, setup]).returncode:
                failed.append(setup)
            continue
        print(record(setup, base_url))
    server.shutdown()
    if failed:
        raise SystemExit(f"not recorded: {', '.join(failed)} (see above)")


if __name__ == "__main__":
    main()
