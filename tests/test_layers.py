"""Layer/failure classification and attribute normalisation (agenttop.analysis.layers).

The corpus is one span shape per row, each citing the convention it comes from, with the
(layer, failure) that the classification rules give it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from agenttop.analysis import layers
from agenttop.analysis.layers import classify, failure_of, normalise
from agenttop.analysis.quality import signals
from agenttop.store.rows import FAILURES, LAYERS

INTERNAL, SERVER, CLIENT, PRODUCER = 1, 2, 3, 4
UNSET, OK, ERROR = 0, 1, 2


def exc(type_: str, message: str = "") -> dict:
    """An OTel ``exception`` span event as the decoder hands it over."""
    return {"name": "exception", "time_ns": 1,
            "attributes": {"exception.type": type_, "exception.message": message}}


def span(id_: str, source: str, expected: tuple[str, str | None], *, name: str = "span",
         kind: int = INTERNAL, root: bool = False, status: int = UNSET,
         attrs: dict | None = None, events: list | None = None, message: str = ""):
    """One corpus row; ``source`` names the convention the shape comes from."""
    return pytest.param(source, name, kind, root, status, attrs or {}, events or [], message,
                        expected, id=id_)


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 95}
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
        "gen_ai.tool.call.id": "call_1"}

CORPUS = [
    # --- OTel GenAI semantic conventions (1.37+) --------------------------------------
    span("otel-chat", "OTel GenAI semconv 1.37 chat span", ("prompt", None),
         name="chat gpt-4o", kind=CLIENT, status=OK, attrs=CHAT),
    span("otel-text-completion", "OTel GenAI text_completion", ("prompt", None),
         name="text_completion davinci", kind=CLIENT,
         attrs={"gen_ai.operation.name": "text_completion", "gen_ai.request.model": "d-002"}),
    span("otel-generate-content", "OTel GenAI generate_content (Gemini)", ("prompt", None),
         kind=CLIENT, attrs={"gen_ai.operation.name": "generate_content",
                             "gen_ai.provider.name": "gcp.gemini"}),
    span("otel-deprecated-completion-op", "OTel GenAI deprecated operation `completion`",
         ("prompt", None), kind=CLIENT, attrs={"gen_ai.operation.name": "completion"}),
    span("otel-embeddings", "OTel GenAI embeddings (memory before prompt despite the model)",
         ("memory", None), kind=CLIENT,
         attrs={"gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": "text-embedding-3-small"}),
    span("otel-retrieval", "OTel GenAI retrieval span with a vector store", ("memory", None),
         name="retrieval kb", kind=CLIENT,
         attrs={"gen_ai.operation.name": "retrieval", "db.system.name": "chroma",
                "db.vector.query.top_k": 5, "gen_ai.request.model": "text-embedding-3"}),
    span("otel-search-memory", "OTel GenAI memory operation search_memory", ("memory", None),
         attrs={"gen_ai.operation.name": "search_memory"}),
    span("otel-update-memory", "OTel GenAI memory operation update_memory", ("memory", None),
         attrs={"gen_ai.operation.name": "update_memory"}),
    span("otel-execute-tool", "OTel GenAI execute_tool span", ("tool", None),
         name="execute_tool lookup_order", attrs=TOOL),
    span("otel-invoke-agent-with-model",
         "OTel GenAI invoke_agent carries gen_ai.request.model; explicit op wins",
         ("runtime", None), name="invoke_agent support", kind=INTERNAL,
         attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                "gen_ai.request.model": "gpt-4o"}),
    span("otel-create-agent", "OTel GenAI create_agent client span", ("runtime", None),
         kind=CLIENT, attrs={"gen_ai.operation.name": "create_agent",
                             "gen_ai.request.model": "gpt-4o"}),
    span("otel-invoke-workflow", "OTel GenAI invoke_workflow", ("runtime", None),
         attrs={"gen_ai.operation.name": "invoke_workflow"}),
    span("otel-deprecated-system", "OTel GenAI deprecated gen_ai.system + "
         "gen_ai.usage.prompt_tokens, no operation", ("prompt", None), kind=CLIENT,
         attrs={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo",
                "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 3}),
    span("otel-tool-name-only", "gen_ai.tool.name on a non-LLM span", ("tool", None),
         attrs={"gen_ai.tool.name": "search"}),
    span("otel-chat-naming-a-tool", "chat span that names a tool stays prompt",
         ("prompt", None), kind=CLIENT, attrs={**CHAT, "gen_ai.tool.name": "search"}),
    span("otel-model-only", "gen_ai.request.model with no operation", ("prompt", None),
         attrs={"gen_ai.request.model": "claude-sonnet-4"}),
    span("otel-uppercase-op", "operation value compared case-insensitively", ("prompt", None),
         attrs={"gen_ai.operation.name": "CHAT"}),
    span("otel-mixed-case-tool-op", "Execute_Tool compared case-insensitively",
         ("tool", None), attrs={"gen_ai.operation.name": "eXecute_tool"}),
    span("otel-invoke-agent-root-timeout", "agent root span (SERVER) that timed out",
         ("runtime", "timeout"), name="invoke_agent support", kind=SERVER, root=True,
         status=ERROR, attrs={"gen_ai.operation.name": "invoke_agent",
                              "error.type": "TimeoutError"},
         events=[exc("TimeoutError", "tool call timed out after 30s")],
         message="upstream timeout"),
    # --- OpenInference (Arize Phoenix) ----------------------------------------------
    span("oi-llm", "OpenInference LLM span", ("prompt", None), name="ChatOpenAI",
         attrs={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                "llm.token_count.prompt": 20}),
    span("oi-llm-lowercase", "OpenInference kind value in lowercase", ("prompt", None),
         attrs={"openinference.span.kind": "llm"}),
    span("oi-tool", "OpenInference TOOL span", ("tool", None),
         attrs={"openinference.span.kind": "TOOL", "tool.name": "search"}),
    span("oi-retriever", "OpenInference RETRIEVER", ("memory", None),
         attrs={"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.id": "1"}),
    span("oi-reranker", "OpenInference RERANKER", ("memory", None),
         attrs={"openinference.span.kind": "RERANKER"}),
    span("oi-embedding", "OpenInference EMBEDDING with a model name", ("memory", None),
         attrs={"openinference.span.kind": "EMBEDDING", "embedding.model_name": "bge"}),
    span("oi-agent", "OpenInference AGENT", ("runtime", None),
         attrs={"openinference.span.kind": "AGENT", "agent.name": "planner"}),
    span("oi-chain", "OpenInference CHAIN (LangChain runnable)", ("runtime", None),
         name="RunnableSequence", attrs={"openinference.span.kind": "CHAIN"}),
    span("oi-guardrail", "OpenInference GUARDRAIL", ("prompt", None),
         attrs={"openinference.span.kind": "GUARDRAIL"}),
    span("oi-evaluator", "OpenInference EVALUATOR", ("prompt", None),
         attrs={"openinference.span.kind": "EVALUATOR"}),
    span("oi-tool-exception", "LangChain ToolException raised through a CHAIN span",
         ("runtime", "tool_error"), status=ERROR,
         attrs={"openinference.span.kind": "CHAIN"},
         events=[exc("langchain_core.tools.ToolException", "lookup failed")]),
    span("tool-named-like-auth", "a GenAI tool's span name does not make it an auth op",
         ("tool", "tool_error"), name="execute_tool refresh_token", status=ERROR,
         attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refresh_token"},
         events=[exc("RuntimeError", "boom")]),
    span("oi-conflicting-kinds", "explicit signals disagree: tool (rule 2) beats chat (4)",
         ("tool", None), attrs={"gen_ai.operation.name": "chat",
                                "openinference.span.kind": "TOOL"}),
    # --- OpenLLMetry / Traceloop ---------------------------------------------------------
    span("tl-workflow", "OpenLLMetry traceloop.span.kind=workflow", ("runtime", None),
         name="support.workflow", attrs={"traceloop.span.kind": "workflow",
                                         "traceloop.entity.name": "support"}),
    span("tl-task", "OpenLLMetry traceloop.span.kind=task", ("runtime", None),
         attrs={"traceloop.span.kind": "task"}),
    span("tl-agent", "OpenLLMetry traceloop.span.kind=agent", ("runtime", None),
         attrs={"traceloop.span.kind": "agent"}),
    span("tl-tool", "OpenLLMetry traceloop.span.kind=tool", ("tool", None),
         attrs={"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}),
    span("tl-chat", "OpenLLMetry llm.request.type=chat with gen_ai.system=OpenAI",
         ("prompt", None), name="openai.chat", kind=CLIENT,
         attrs={"llm.request.type": "chat", "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-4o"}),
    span("tl-embedding", "OpenLLMetry llm.request.type=embedding", ("memory", None),
         name="openai.embeddings", kind=CLIENT,
         attrs={"llm.request.type": "embedding", "gen_ai.request.model": "ada-002"}),
    # --- LangChain / LangSmith / LangGraph ----------------------------------------------
    span("ls-tool", "LangSmith OTel export, run type tool", ("tool", None),
         attrs={"langsmith.span.kind": "tool"}),
    span("ls-retriever", "LangSmith OTel export, run type retriever", ("memory", None),
         attrs={"langsmith.span.kind": "retriever"}),
    span("ls-llm-in-langgraph-node", "LangSmith llm run inside a LangGraph node",
         ("prompt", None),
         attrs={"langsmith.span.kind": "llm",
                "langsmith.metadata.langgraph_checkpoint_ns": "agent:1",
                "langsmith.metadata.ls_model_name": "gpt-4o"}),
    span("lg-node-metadata-is-not-checkpoint",
         "LangGraph stamps langgraph_checkpoint_ns on every node's runs: a model call "
         "carrying it is prompt, not a checkpoint", ("prompt", None),
         attrs={"langsmith.metadata.langgraph_checkpoint_ns": "agent:1",
                "metadata.langgraph_checkpoint_ns": "agent:1",
                "langsmith.metadata.ls_model_name": "gpt-4o"}),
    span("ls-parser-schema", "LangChain OutputParserException in a parser run",
         ("prompt", "schema"), status=ERROR, attrs={"langsmith.span.kind": "parser"},
         events=[exc("langchain_core.exceptions.OutputParserException", "bad output")]),
    span("lg-checkpoint-name", "LangGraph checkpoint put, no db attributes",
         ("memory", None), name="SqliteSaver.put_checkpoint"),
    span("lg-checkpoint-attrs", "LangGraph checkpoint write (agenttop bench shape)",
         ("memory", None), name="checkpoint write",
         attrs={"langgraph.checkpoint.ns": "support", "db.system.name": "sqlite",
                "db.operation.name": "INSERT"}),
    span("lg-checkpoint-failure", "LangGraph Postgres checkpointer losing its server",
         ("memory", "server"), name="checkpoint write", status=ERROR,
         attrs={"langgraph.checkpoint.ns": "support"},
         events=[exc("psycopg.OperationalError", "connection refused")]),
    # --- MCP semantic conventions ----------------------------------------------------------
    span("mcp-tools-call-client", "MCP tools/call client span", ("tool", None),
         name="tools/call lookup_order", kind=CLIENT,
         attrs={"mcp.method.name": "tools/call", "gen_ai.tool.name": "lookup_order",
                "mcp.session.id": "m-1"}),
    span("mcp-tools-call-server", "MCP tools/call SERVER span: tool beats SERVER",
         ("tool", None), kind=SERVER, root=True,
         attrs={"mcp.method.name": "tools/call", "gen_ai.tool.name": "lookup_order"}),
    span("mcp-tool-is-error", "MCP tool result isError: error.type=tool_error",
         ("tool", "tool_error"), kind=CLIENT, status=ERROR,
         attrs={"mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool",
                "error.type": "tool_error"}),
    span("mcp-invalid-params", "MCP JSON-RPC -32602 invalid params", ("tool", "schema"),
         kind=CLIENT, status=ERROR,
         attrs={"mcp.method.name": "tools/call", "error.type": "-32602",
                "rpc.response.status_code": "-32602"}),
    span("mcp-initialize", "MCP initialize client span", ("other", None), kind=CLIENT,
         attrs={"mcp.method.name": "initialize", "mcp.session.id": "m-1"}),
    span("mcp-resources-read-server", "MCP resources/read SERVER span", ("memory", None),
         kind=SERVER, attrs={"mcp.method.name": "resources/read"}),
    # MCP SDK 2.x native spans: protocol calls are not the agent's runtime.
    span("mcp-prompts-get-server", "MCP SDK 2 prompts/get SERVER span", ("prompt", None),
         name="prompts/get support_prompt", kind=SERVER,
         attrs={"mcp.method.name": "prompts/get", "gen_ai.prompt.name": "support_prompt"}),
    span("mcp-tools-list-server", "MCP SDK 2 tools/list SERVER span", ("other", None),
         name="tools/list", kind=SERVER, attrs={"mcp.method.name": "tools/list"}),
    span("mcp-server-discover", "MCP SDK 2 server/discover SERVER span", ("other", None),
         name="server/discover", kind=SERVER, attrs={"mcp.method.name": "server/discover"}),
    # openlit: a failed call carries no attributes, only its GenAI-convention name.
    span("openlit-429", "openlit failed chat, no attributes", ("prompt", "rate_limit"),
         name="chat gpt-4o-mini", kind=CLIENT, status=ERROR,
         message="RateLimitError: Error code: 429 - {'error': {'message': 'slow down'}}",
         events=[{"name": "exception", "time_ns": 1,
                  "attributes": {"exception.type": "openai.RateLimitError"}}]),
    span("openlit-500", "openlit failed chat, no attributes", ("prompt", "server"),
         name="chat gpt-4o-mini", kind=CLIENT, status=ERROR,
         message="InternalServerError: Error code: 500",
         events=[{"name": "exception", "time_ns": 1,
                  "attributes": {"exception.type": "openai.InternalServerError"}}]),
    span("openlit-timeout", "openlit failed chat, no attributes", ("prompt", "timeout"),
         name="chat gpt-4o-mini", kind=CLIENT, status=ERROR, message="Request timed out.",
         events=[{"name": "exception", "time_ns": 1,
                  "attributes": {"exception.type": "openai.APITimeoutError"}}]),
    span("openinference-traceback", "OpenInference LangChain: a traceback as the status",
         ("other", "error"), status=ERROR,
         message='Traceback (most recent call last):\n  File "x.py", line 3, in run\n'
                 '    return fut.result(timeout)\nRuntimeError: order service refused the '
                 'order'),
    # --- databases and vector stores ---------------------------------------------------------
    span("db-postgres", "OTel DB semconv db.system.name", ("memory", None), kind=CLIENT,
         name="SELECT orders", attrs={"db.system.name": "postgresql"}),
    span("db-deprecated-system", "OTel DB semconv deprecated db.system", ("memory", None),
         kind=CLIENT, attrs={"db.system": "redis"}),
    span("db-vector-only", "vector DB span with db.vector.* only (OpenLLMetry Qdrant)",
         ("memory", None), kind=CLIENT, attrs={"db.vector.query.top_k": 5}),
    span("db-timeout", "gRPC DEADLINE_EXCEEDED from a vector store", ("memory", "timeout"),
         kind=CLIENT, status=ERROR,
         attrs={"db.system.name": "milvus", "rpc.grpc.status_code": 4}),
    # --- plain HTTP / gRPC ---------------------------------------------------------------
    span("http-client-429", "plain HTTP client 429", ("other", "rate_limit"), name="POST",
         kind=CLIENT, status=ERROR,
         attrs={"http.request.method": "POST", "http.response.status_code": 429,
                "error.type": "429"}),
    span("http-client-503", "plain HTTP client 503", ("other", "server"), name="GET",
         kind=CLIENT, status=ERROR, attrs={"http.response.status_code": 503}),
    span("http-client-504", "plain HTTP client 504", ("other", "timeout"), kind=CLIENT,
         status=ERROR, attrs={"http.response.status_code": 504}),
    span("http-client-401", "plain HTTP client 401", ("auth", "auth"), kind=CLIENT,
         status=ERROR, attrs={"http.response.status_code": 401, "error.type": "401"}),
    span("http-deprecated-403", "deprecated http.status_code 403", ("auth", "auth"),
         kind=CLIENT, status=ERROR, attrs={"http.status_code": "403"}),
    span("http-422-schema", "HTTP 422 Unprocessable Entity", ("other", "schema"),
         kind=CLIENT, status=ERROR, attrs={"http.response.status_code": 422}),
    span("http-400-generic", "HTTP 400 with no more specific signal", ("other", "error"),
         kind=CLIENT, status=ERROR, attrs={"http.response.status_code": 400}),
    span("http-server-401-unset", "SERVER span answering 401, status unset per HTTP semconv",
         ("auth", "auth"), name="POST /v1/agent", kind=SERVER, root=True,
         attrs={"http.request.method": "POST", "http.route": "/v1/agent",
                "http.response.status_code": 401}),
    span("http-server-404-unset", "SERVER span answering 404 is not a failure",
         ("runtime", None), name="GET /missing", kind=SERVER, root=True,
         attrs={"http.response.status_code": 404}),
    span("http-server-500", "SERVER span answering 500", ("runtime", "server"), kind=SERVER,
         root=True, status=ERROR, attrs={"http.response.status_code": 500,
                                         "error.type": "500"}),
    span("http-oauth-timeout", "failed auth endpoint call: auth layer, timeout category",
         ("auth", "timeout"), name="POST", kind=CLIENT, status=ERROR,
         attrs={"http.request.method": "POST", "url.full": "https://idp.example/oauth/token",
                "error.type": "httpx.ConnectTimeout"}),
    span("http-auth-verify-ok", "successful auth call (agenttop bench shape) is not auth",
         ("other", None), name="POST /auth/verify", kind=CLIENT,
         attrs={"http.request.method": "POST", "url.full": "https://auth.internal/verify",
                "http.response.status_code": 200}),
    span("http-auth-service-500", "auth service 5xx: auth layer, server category",
         ("auth", "server"), name="POST /auth/verify", kind=CLIENT, status=ERROR,
         attrs={"url.full": "https://auth.internal/verify", "http.response.status_code": 502}),
    span("http-count-tokens-500", "count_tokens endpoint is not an auth operation",
         ("other", "server"), name="POST", kind=CLIENT, status=ERROR,
         attrs={"url.full": "https://api.anthropic.com/v1/messages/count_tokens",
                "http.response.status_code": 500}),
    span("http-token-in-query", "access_token in a query string is not an auth operation",
         ("other", "server"), name="GET", kind=CLIENT, status=ERROR,
         attrs={"url.full": "https://files.example/v1/blob?access_token=x",
                "http.response.status_code": 500}),
    span("grpc-unauthenticated", "gRPC client UNAUTHENTICATED", ("auth", "auth"),
         kind=CLIENT, status=ERROR, attrs={"rpc.system": "grpc", "rpc.grpc.status_code": 16}),
    span("grpc-permission-denied", "gRPC client PERMISSION_DENIED", ("auth", "auth"),
         kind=CLIENT, status=ERROR, attrs={"rpc.grpc.status_code": 7}),
    span("grpc-resource-exhausted-chat", "Gemini over gRPC: RESOURCE_EXHAUSTED on chat",
         ("prompt", "rate_limit"), kind=CLIENT, status=ERROR,
         attrs={**CHAT, "rpc.grpc.status_code": 8}),
    span("grpc-unavailable", "gRPC client UNAVAILABLE", ("other", "server"), kind=CLIENT,
         status=ERROR, attrs={"rpc.grpc.status_code": 14}),
    span("grpc-new-semconv-name", "RPC semconv rpc.response.status_code as a name",
         ("other", "timeout"), kind=CLIENT, status=ERROR,
         attrs={"rpc.response.status_code": "DEADLINE_EXCEEDED"}),
    span("grpc-server-unauthenticated-unset", "gRPC SERVER span rejecting a caller",
         ("auth", "auth"), kind=SERVER, root=True,
         attrs={"rpc.system": "grpc", "rpc.grpc.status_code": 16}),
    # --- provider SDK exceptions -------------------------------------------------------------
    span("openai-authentication-error", "openai.AuthenticationError on a chat span",
         ("auth", "auth"), kind=CLIENT, status=ERROR,
         attrs={**CHAT, "error.type": "openai.AuthenticationError"},
         events=[exc("openai.AuthenticationError", "Error code: 401 - Incorrect API key")]),
    span("openai-rate-limit-error", "openai.RateLimitError on a chat span",
         ("prompt", "rate_limit"), kind=CLIENT, status=ERROR,
         attrs={**CHAT, "error.type": "openai.RateLimitError"}),
    span("anthropic-overloaded", "anthropic.OverloadedError (HTTP 529)", ("prompt", "server"),
         kind=CLIENT, status=ERROR, attrs={**CHAT, "error.type": "anthropic.OverloadedError"}),
    span("openai-connection-error", "openai.APIConnectionError", ("prompt", "server"),
         kind=CLIENT, status=ERROR,
         events=[exc("openai.APIConnectionError", "Connection error.")], attrs=CHAT),
    span("openai-status-error-code-in-message",
         "generic APIStatusError, category from 'Error code: 500' in the message",
         ("prompt", "server"), kind=CLIENT, status=ERROR, attrs=CHAT,
         events=[exc("openai.APIStatusError", "Error code: 500 - {'error': 'oops'}")]),
    span("openai-quota", "OpenAI insufficient_quota message", ("prompt", "rate_limit"),
         kind=CLIENT, status=ERROR, attrs=CHAT,
         events=[exc("openai.APIStatusError", "You exceeded your current quota")]),
    span("pydantic-validation-error", "pydantic ValidationError exception event",
         ("prompt", "schema"), kind=CLIENT, status=ERROR, attrs=CHAT,
         events=[exc("pydantic_core._pydantic_core.ValidationError",
                     "1 validation error for Answer")]),
    span("json-decode-error-tool", "json.JSONDecodeError parsing tool arguments",
         ("tool", "schema"), status=ERROR, attrs=TOOL,
         events=[exc("json.decoder.JSONDecodeError", "Expecting value: line 1 column 1")]),
    span("value-error-validation", "ValueError whose message says validation",
         ("prompt", "schema"), status=ERROR, attrs=CHAT,
         events=[exc("ValueError", "output failed validation: missing 'answer'")]),
    span("asyncio-timeout-tool", "asyncio.TimeoutError in a tool", ("tool", "timeout"),
         status=ERROR, attrs=TOOL, events=[exc("asyncio.TimeoutError")]),
    span("httpx-read-timeout-tool", "httpx.ReadTimeout in a tool", ("tool", "timeout"),
         status=ERROR, attrs={**TOOL, "error.type": "httpx.ReadTimeout"}),
    span("generic-error-tool", "RuntimeError in a tool becomes tool_error",
         ("tool", "tool_error"), status=ERROR, attrs=TOOL,
         events=[exc("RuntimeError", "boom")]),
    span("generic-error-chat", "RuntimeError on a chat span stays error", ("prompt", "error"),
         status=ERROR, attrs=CHAT, events=[exc("RuntimeError", "boom")]),
    span("status-message-rate-limit", "status message only", ("other", "rate_limit"),
         status=ERROR, message="Rate limit exceeded, retry in 20s"),
    span("status-error-bare", "status ERROR and nothing else", ("other", "error"),
         status=ERROR),
    span("error-type-other-unset-status", "error.type=_OTHER is still a failure",
         ("prompt", "error"), attrs={**CHAT, "error.type": "_OTHER"}),
    span("exception-event-unset-status", "exception event alone marks a failure",
         ("tool", "timeout"), attrs=TOOL, events=[exc("TimeoutError")]),
    span("ok-status-handled-exception", "explicit OK status: handled exception, no failure",
         ("tool", None), status=OK, attrs=TOOL, events=[exc("TimeoutError")]),
    span("empty-error-type", "error.type='' is not set", ("prompt", None), attrs={
        **CHAT, "error.type": ""}),
    span("jwt-expired-internal", "PyJWT ExpiredSignatureError in an internal span",
         ("auth", "auth"), name="verify_request", status=ERROR,
         events=[exc("jwt.exceptions.ExpiredSignatureError", "Signature has expired")]),
    # --- overrides and structure ------------------------------------------------------------
    span("override-memory", "agenttop.layer override on a chat span", ("memory", None),
         attrs={**CHAT, "agenttop.layer": "memory"}),
    span("override-uppercase", "agenttop.layer value is case-insensitive", ("tool", None),
         attrs={"agenttop.layer": "TOOL"}),
    span("override-invalid-ignored", "agenttop.layer that is not a layer is ignored",
         ("prompt", None), attrs={**CHAT, "agenttop.layer": "database"}),
    span("override-beats-auth", "agenttop.layer wins over rule 1", ("prompt", "auth"),
         status=ERROR, attrs={"agenttop.layer": "prompt", "http.response.status_code": 401}),
    span("override-tool-refines-error", "override to tool refines error to tool_error",
         ("tool", "tool_error"), status=ERROR, attrs={"agenttop.layer": "tool"}),
    span("root-no-attributes", "root span with no attributes", ("runtime", None),
         name="agent_process", root=True),
    span("lesson-agent-process", "the lesson's agent_process root with thread_id",
         ("runtime", None), name="agent_process", root=True, attrs={"thread_id": "t-1"}),
    span("server-no-attributes", "SERVER span", ("runtime", None), kind=SERVER),
    span("internal-no-attributes", "INTERNAL child span with nothing known",
         ("other", None), name="format_reply"),
    span("producer", "PRODUCER span (queue publish)", ("other", None), kind=PRODUCER,
         attrs={"messaging.system": "kafka"}),
    span("unknown-op-with-model", "unknown gen_ai.operation.name falls to inferred rules",
         ("prompt", None), attrs={"gen_ai.operation.name": "rerank",
                                  "gen_ai.request.model": "rerank-v3"}),
    span("non-string-op", "malformed list-valued operation does not crash",
         ("other", None), attrs={"gen_ai.operation.name": ["chat"],
                                 "openinference.span.kind": {"x": 1}}),
]


def test_corpus_is_large_and_unique():
    ids = [p.id for p in CORPUS]
    assert len(ids) >= 50
    assert len(set(ids)) == len(ids)
    assert all(p.values[0] for p in CORPUS), "every row cites its convention"


@pytest.mark.parametrize(
    ("source", "name", "kind", "root", "status", "attrs", "events", "message", "expected"),
    CORPUS)
def test_classify_corpus(source, name, kind, root, status, attrs, events, message, expected):
    result = classify(name, kind, root, status, attrs, events, message)
    assert result == expected
    assert result[0] in LAYERS
    assert result[1] is None or result[1] in FAILURES


def test_classify_does_not_mutate_inputs():
    attrs = {**CHAT, "error.type": "openai.RateLimitError"}
    events = [exc("openai.RateLimitError")]
    before = (dict(attrs), [dict(e) for e in events])
    classify("chat", CLIENT, False, ERROR, attrs, events)
    normalise(attrs)
    assert (attrs, events) == before


# ---------------------------------------------------------------------------- failure_of


@pytest.mark.parametrize(("status", "attrs", "events", "message", "expected"), [
    pytest.param(OK, {}, [], "", None, id="ok"),
    pytest.param(UNSET, {}, [], "", None, id="unset"),
    pytest.param(ERROR, {}, [], "", "error", id="error-bare"),
    pytest.param(ERROR, {}, [], "request timed out", "timeout", id="message-timed-out"),
    pytest.param(ERROR, {}, [], "HTTP 401", "auth", id="message-http-code"),
    pytest.param(UNSET, {"error.type": "RateLimitError"}, [], "", "rate_limit",
                 id="error-type-alone"),
    pytest.param(UNSET, {}, [exc("google.api_core.exceptions.ResourceExhausted")], "",
                 "rate_limit", id="exception-alone"),
    pytest.param(UNSET, {}, [{"name": "gen_ai.choice", "time_ns": 1, "attributes": {}}], "",
                 None, id="non-exception-event"),
    pytest.param(ERROR, {"error.type": "TimeoutError", "http.response.status_code": 500}, [],
                 "", "timeout", id="type-name-beats-status-code"),
    pytest.param(ERROR, {"error.type": "RuntimeError", "http.response.status_code": 429}, [],
                 "", "rate_limit", id="status-code-beats-generic-name"),
    pytest.param(ERROR, {"rpc.grpc.status_code": 0}, [], "", "error", id="grpc-ok-code"),
    pytest.param(ERROR, {"error.type": "ToolException"}, [], "", "tool_error",
                 id="named-tool-error"),
    pytest.param(ERROR, {"error.type": "botocore.exceptions.NoCredentialsError"}, [], "",
                 "auth", id="aws-no-credentials"),
    pytest.param(ERROR, {"error.type": "ThrottlingException"}, [], "", "rate_limit",
                 id="aws-throttling"),
    pytest.param(ERROR, {"error.type": "ServiceUnavailable"}, [], "", "server",
                 id="service-unavailable"),
    pytest.param(ERROR, {"error.type": "INTERNAL"}, [], "", "server",
                 id="grpc-status-name-as-error-type"),
])
def test_failure_of(status, attrs, events, message, expected):
    assert failure_of(status, attrs, events, message) == expected


def test_failure_of_server_auth_denial_needs_server_kind():
    attrs = {"http.response.status_code": 403}
    assert failure_of(UNSET, attrs, [], kind=SERVER) == "auth"
    assert failure_of(UNSET, attrs, []) is None
    assert failure_of(OK, attrs, [], kind=SERVER) is None


# ---------------------------------------------------------------------------- case rules


@pytest.mark.parametrize("value", ["tool", "TOOL", "Tool", "tOoL"])
def test_openinference_kind_any_case(value):
    assert classify("s", INTERNAL, False, UNSET, {"openinference.span.kind": value}, []) == (
        "tool", None)


@pytest.mark.parametrize(("key", "value", "layer"), [
    ("traceloop.span.kind", "WORKFLOW", "runtime"),
    ("llm.request.type", "Embedding", "memory"),
    ("mcp.method.name", "TOOLS/CALL", "tool"),
    ("gen_ai.operation.name", "Search_Memory", "memory"),
    ("agenttop.layer", "Runtime", "runtime"),
])
def test_values_compared_case_insensitively(key, value, layer):
    assert classify("s", INTERNAL, False, UNSET, {key: value}, [])[0] == layer


def test_keys_compared_as_given():
    # OTel attribute keys are case-sensitive; an upper-case key is a different attribute.
    assert classify("s", INTERNAL, False, UNSET, {"GEN_AI.OPERATION.NAME": "chat"}, []) == (
        "other", None)


def test_error_names_any_case():
    assert failure_of(ERROR, {"error.type": "RATE_LIMIT_ERROR"}, []) == "rate_limit"
    assert failure_of(ERROR, {"error.type": "unauthenticated"}, []) == "auth"


# ----------------------------------------------------------------------------- normalise


def test_normalise_otel_current():
    attrs = {**CHAT, "gen_ai.response.model": "gpt-4o-2024-08-06",
             "gen_ai.response.finish_reasons": ["stop"], "gen_ai.agent.name": "support",
             "gen_ai.conversation.id": "conv-1", "user.id": "u1",
             "gen_ai.request.temperature": 0.2}
    assert normalise(attrs) == {
        "provider": "openai", "model": "gpt-4o", "operation": "chat", "input_tokens": 812,
        "output_tokens": 95, "finish_reasons": ["stop"], "agent": "support",
        "session": "conv-1", "user": "u1",
    }


def test_normalise_otel_deprecated_names():
    attrs = {"gen_ai.system": "openai", "gen_ai.response.model": "gpt-4o-mini-2024",
             "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 4,
             "enduser.id": "e1"}
    assert normalise(attrs) == {"provider": "openai", "model": "gpt-4o-mini-2024",
                                "input_tokens": 10, "output_tokens": 4, "user": "e1"}


def test_normalise_current_name_beats_deprecated_whatever_the_order():
    attrs = {"gen_ai.usage.prompt_tokens": 1, "gen_ai.usage.input_tokens": 2,
             "gen_ai.system": "old", "gen_ai.provider.name": "new",
             "enduser.id": "old", "user.id": "new"}
    assert normalise(attrs) == {"input_tokens": 2, "provider": "new", "user": "new"}
    assert normalise(dict(reversed(attrs.items()))) == normalise(attrs)


def test_normalise_openinference():
    attrs = {"openinference.span.kind": "LLM", "llm.provider": "anthropic",
             "llm.system": "anthropic", "llm.model_name": "claude-sonnet-4",
             "llm.token_count.prompt": 100, "llm.token_count.completion": 20,
             "llm.token_count.total": 120, "session.id": "s1", "user.id": "u1"}
    assert normalise(attrs) == {
        "provider": "anthropic", "model": "claude-sonnet-4", "input_tokens": 100,
        "output_tokens": 20, "total_tokens": 120, "session": "s1", "user": "u1"}
    assert normalise({"openinference.span.kind": "TOOL", "tool.name": "search"}) == {
        "operation": "execute_tool", "tool": "search"}
    assert normalise({"openinference.span.kind": "AGENT", "agent.name": "planner"}) == {
        "operation": "invoke_agent", "agent": "planner"}


def test_normalise_openllmetry_string_tokens_and_provider_case():
    attrs = {"llm.request.type": "chat", "gen_ai.system": "OpenAI",
             "gen_ai.request.model": "gpt-4o", "llm.usage.prompt_tokens": "1000",
             "llm.usage.completion_tokens": " 200 ", "llm.usage.total_tokens": "1200.0"}
    assert normalise(attrs) == {
        "operation": "chat", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
        "output_tokens": 200, "total_tokens": 1200}


def test_normalise_traceloop_entities():
    assert normalise({"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}) == {
        "operation": "execute_tool", "tool": "search"}
    assert normalise({"traceloop.span.kind": "agent", "traceloop.entity.name": "triage"}) == {
        "operation": "invoke_agent", "agent": "triage"}
    # A workflow's entity name is neither a tool nor an agent.
    assert normalise({"traceloop.span.kind": "workflow",
                      "traceloop.entity.name": "support"}) == {"operation": "invoke_workflow"}
    assert normalise({"llm.request.type": "completion"}) == {"operation": "text_completion"}


def test_normalise_langchain_langgraph():
    attrs = {"langsmith.metadata.ls_provider": "OpenAI",
             "langsmith.metadata.ls_model_name": "gpt-4o",
             "langsmith.metadata.langgraph_node": "researcher"}
    assert normalise(attrs) == {"provider": "openai", "model": "gpt-4o",
                                "agent": "researcher"}
    assert normalise({"ls_provider": "anthropic", "ls_model_name": "claude"}) == {
        "provider": "anthropic", "model": "claude"}
    assert normalise({"langgraph.node": "tools"}) == {"agent": "tools"}
    # An explicit agent name beats the graph node.
    assert normalise({"langgraph.node": "n", "gen_ai.agent.name": "a"}) == {"agent": "a"}


def test_normalise_mcp():
    attrs = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "lookup_order",
             "mcp.session.id": "m-1"}
    # An MCP session is a transport connection, not a conversation: a field of its own.
    assert normalise(attrs) == {"operation": "execute_tool", "tool": "lookup_order",
                                "mcp_session": "m-1"}
    assert normalise({"mcp.method.name": "resources/read"}) == {"operation": "resources/read"}
    assert normalise({"mcp.session.id": "m", "gen_ai.conversation.id": "c"}) == {
        "session": "c", "mcp_session": "m"}


def test_normalise_lesson_thread_id_is_the_session():
    assert normalise({"thread_id": "t-1"}) == {"session": "t-1"}


@pytest.mark.parametrize(("value", "expected"), [
    (812, 812), ("812", 812), (" 812 ", 812), ("812.0", 812), (812.0, 812),
    ("lots", None), (True, None), (12.5, None), ([1], None), ("", None),
])
def test_normalise_token_values(value, expected):
    got = normalise({"gen_ai.usage.input_tokens": value}).get("input_tokens")
    assert got == expected
    assert got is None or type(got) is int


def test_normalise_unconvertible_current_name_yields_to_alias():
    attrs = {"gen_ai.usage.input_tokens": "n/a", "gen_ai.usage.prompt_tokens": "7"}
    assert normalise(attrs) == {"input_tokens": 7}


@pytest.mark.parametrize(("value", "expected"), [
    (["stop", "length"], ["stop", "length"]),
    (("stop",), ["stop"]),
    ("stop", ["stop"]),
    ('["tool_calls"]', ["tool_calls"]),
    ([1], ["1"]),
])
def test_normalise_finish_reasons(value, expected):
    assert normalise({"gen_ai.response.finish_reasons": value}) == {"finish_reasons": expected}


def test_normalise_finish_reasons_is_a_copy():
    reasons = ["stop"]
    normalise({"gen_ai.response.finish_reasons": reasons})["finish_reasons"].append("x")
    assert reasons == ["stop"]


def test_normalise_ids_and_junk():
    assert normalise({"user.id": 42, "session.id": 7}) == {"user": "42", "session": "7"}
    assert normalise({"gen_ai.request.model": 3, "gen_ai.provider.name": "",
                      "gen_ai.tool.name": {"x": 1}}) == {}
    assert normalise({}) == {}
    assert normalise({"http.request.method": "GET"}) == {}


def test_normalise_operation_lowercased():
    assert normalise({"gen_ai.operation.name": "Chat"}) == {"operation": "chat"}


def test_normalise_same_key_set_different_values():
    # The per-key-set plan cache must not leak values between spans.
    first = normalise({"gen_ai.request.model": "a", "gen_ai.usage.input_tokens": 1})
    second = normalise({"gen_ai.request.model": "b", "gen_ai.usage.input_tokens": "x"})
    assert first == {"model": "a", "input_tokens": 1}
    assert second == {"model": "b"}


def test_normalise_many_distinct_key_sets():
    # OpenInference flattens messages into indexed keys; the plan cache must stay bounded
    # and correct past its limit.
    for i in range(layers._PLANS_MAX + 10):
        attrs = {f"llm.input_messages.{i}.message.role": "user", "llm.model_name": f"m{i}"}
        assert normalise(attrs) == {"model": f"m{i}"}
        assert 0 < len(layers._PLANS) <= layers._PLANS_MAX


def test_normalise_span_with_many_keys():
    attrs = {f"llm.input_messages.{i}.message.content": "hi" for i in range(200)}
    attrs["llm.token_count.prompt"] = "9"
    layers._PLANS.clear()
    assert normalise(attrs) == {"input_tokens": 9}
    assert normalise(attrs) == {"input_tokens": 9}
    assert not layers._PLANS, "big key sets are not cached"


# --------------------------------------------------------------------------------- hygiene


def test_headless_import():
    code = ("import sys, agenttop.analysis.layers; "
            "sys.exit(any(m in sys.modules for m in ('textual', 'rich')))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_current_genai_operations_and_token_kinds():
    for operation, layer in (("plan", "runtime"), ("handle_conversation_turn", "runtime"),
                             ("apply_guardrail", "prompt"), ("create_memory", "memory"),
                             ("upsert_memory", "memory"), ("delete_memory", "memory"),
                             ("invoke_workflow", "runtime")):
        assert classify("x", INTERNAL, False, UNSET,
                        {"gen_ai.operation.name": operation}, [])[0] == layer, operation
    got = normalise({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.cache_read.input_tokens": 60,
                     "gen_ai.usage.cache_creation.input_tokens": "20",
                     "gen_ai.usage.reasoning.output_tokens": 7})
    assert (got["cache_read_tokens"], got["cache_write_tokens"], got["reasoning_tokens"]) == (
        60, 20, 7)
    assert normalise({"gen_ai.usage.cache_write.input_tokens": 3})["cache_write_tokens"] == 3


def test_openllmetry_retriever_model_and_session():
    # As OpenLLMetry sent them with LangChain (the shapes issue 13 recorded).
    retriever = {"gen_ai.operation.name": "vector_db_retrieve", "traceloop.span.kind": "task",
                 "traceloop.entity.name": "VectorStoreRetriever",
                 "traceloop.association.properties.ls_retriever_name": "vectorstore",
                 "traceloop.entity.output": '{"documents": [{"page_content": "a"}, '
                                            '{"page_content": "b"}], "count": 2}'}
    assert classify("vector_db_retrieve VectorStoreRetriever", CLIENT, False, UNSET,
                    retriever, [])[0] == "memory"
    assert signals("memory", retriever, [], normalise(retriever))["retrieval_count"] == 2
    chat = {"gen_ai.request.model": "unknown", "gen_ai.operation.name": "chat",
            "traceloop.association.properties.ls_model_name": "gpt-4o-mini",
            "traceloop.association.properties.session_id": "s-7"}
    got = normalise(chat)
    assert (got["model"], got["session"]) == ("gpt-4o-mini", "s-7")
    thread = normalise({"traceloop.association.properties.thread_id": "t-1"})
    assert thread["session"] == "t-1"


def test_openinference_langgraph_node_inside_its_metadata_json():
    got = normalise({"openinference.span.kind": "CHAIN",
                     "metadata": '{"langgraph_step": 2, "langgraph_node": "researcher"}'})
    assert got["agent"] == "researcher"
    assert "agent" not in normalise({"metadata": "not json, mentions \"langgraph_node\""})
