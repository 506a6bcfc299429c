"""Per-span cost of layer classification and attribute normalisation.

Builds agent-shaped spans (fixed seed) in the attribute conventions agenttop meets: OTel
GenAI current and deprecated names, OpenInference, OpenLLMetry/Traceloop, LangSmith/
LangGraph, MCP, plain HTTP and gRPC, ~3 % of them failed in various ways. Then times
``classify`` + ``normalise`` over all of them, as the receiver calls them, and prints one
JSON line. The best of three passes is reported, so a noisy neighbour does not count.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from agenttop.analysis.layers import classify, normalise

Span = tuple[str, int, bool, int, dict, list, str]

_FAILURES = (
    ("TimeoutError", "tool call timed out after 30s", {}),
    ("openai.RateLimitError", "Error code: 429 - rate limit reached", {}),
    ("openai.AuthenticationError", "Error code: 401 - Incorrect API key", {}),
    ("pydantic_core._pydantic_core.ValidationError", "1 validation error for Answer", {}),
    ("RuntimeError", "boom", {"http.response.status_code": 503}),
    ("ToolException", "lookup failed", {}),
)


def _otel_genai(rng: random.Random, role: str) -> tuple[str, int, dict]:
    if role == "chat":
        return "chat gpt-4o", 3, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": rng.randrange(100, 4000),
            "gen_ai.usage.output_tokens": rng.randrange(10, 800),
            "gen_ai.request.temperature": 0.2, "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.id": f"chatcmpl-{rng.randrange(10**9)}",
            "server.address": "api.openai.com",
        }
    if role == "tool":
        tool = rng.choice(("lookup_order", "issue_refund", "search_kb"))
        return f"execute_tool {tool}", 1, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": f"call_{rng.randrange(10**9)}",
            "gen_ai.tool.call.arguments": '{"order_id": 1}',
        }
    if role == "memory":
        return "retrieval kb", 3, {
            "gen_ai.operation.name": "retrieval", "db.system.name": "chroma",
            "db.collection.name": "kb", "db.vector.query.top_k": 5,
            "gen_ai.request.model": "text-embedding-3-small",
        }
    if role == "checkpoint":
        return "checkpoint write", 1, {
            "langgraph.checkpoint.ns": "support", "db.system.name": "sqlite",
            "db.operation.name": "INSERT",
        }
    if role == "auth":
        return "POST /auth/verify", 3, {
            "http.request.method": "POST", "url.full": "https://auth.internal/verify",
            "http.response.status_code": 200, "server.address": "auth.internal",
        }
    return "invoke_agent support", 2, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.conversation.id": f"conv-{rng.randrange(10**6)}", "thread_id": "t-1",
        "user.id": f"u{rng.randrange(1000)}",
    }


def _other_convention(rng: random.Random, role: str) -> tuple[str, int, dict]:
    convention = rng.randrange(5)
    if convention == 0:  # deprecated OTel GenAI names
        return "chat gpt-4o-mini", 3, {
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": rng.randrange(100, 4000),
            "gen_ai.usage.completion_tokens": rng.randrange(10, 800),
        }
    if convention == 1:  # OpenInference
        kind = {"chat": "LLM", "tool": "TOOL", "memory": "RETRIEVER"}.get(role, "CHAIN")
        attrs: dict = {"openinference.span.kind": kind, "session.id": "s-1",
                       "input.value": "hello", "input.mime_type": "text/plain"}
        if kind == "LLM":
            attrs.update({"llm.provider": "anthropic", "llm.model_name": "claude-sonnet-4",
                          "llm.token_count.prompt": rng.randrange(100, 4000),
                          "llm.token_count.completion": rng.randrange(10, 800),
                          "llm.token_count.total": 900})
        elif kind == "TOOL":
            attrs["tool.name"] = "search_kb"
        return kind.lower(), 1, attrs
    if convention == 2:  # OpenLLMetry / Traceloop
        if role == "chat":
            return "openai.chat", 3, {
                "llm.request.type": "chat", "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-4o", "llm.usage.total_tokens": "1200",
                "gen_ai.usage.prompt_tokens": "1000", "gen_ai.usage.completion_tokens": "200",
            }
        kind = "tool" if role == "tool" else "task"
        return f"search.{kind}", 1, {"traceloop.span.kind": kind,
                                     "traceloop.entity.name": "search",
                                     "traceloop.workflow.name": "support"}
    if convention == 3:  # MCP
        return "tools/call lookup_order", 3, {
            "mcp.method.name": "tools/call", "gen_ai.tool.name": "lookup_order",
            "mcp.session.id": "m-1", "jsonrpc.request.id": "7",
            "network.transport": "pipe",
        }
    return "ChatOpenAI", 1, {  # LangSmith OTel export of a LangGraph node's LLM run
        "langsmith.span.kind": "llm", "langsmith.metadata.ls_provider": "openai",
        "langsmith.metadata.ls_model_name": "gpt-4o",
        "langsmith.metadata.langgraph_node": "agent",
        "langsmith.metadata.langgraph_checkpoint_ns": "agent:1",
    }


def build(count: int, seed: int) -> list[Span]:
    rng = random.Random(seed)
    roles = ("root", "auth", "chat", "memory", "tool", "chat", "tool", "memory", "chat",
             "checkpoint")
    spans: list[Span] = []
    for i in range(count):
        role = roles[i % len(roles)]
        if role != "root" and rng.random() < 0.3:
            name, kind, attrs = _other_convention(rng, role)
        else:
            name, kind, attrs = _otel_genai(rng, role)
        status, message, events = 0 if rng.random() < 0.5 else 1, "", []
        if role != "root" and rng.random() < 0.03:
            error_type, message, extra = rng.choice(_FAILURES)
            status = 2
            attrs = {**attrs, **extra, "error.type": error_type}
            events = [{"name": "exception", "time_ns": 0, "attributes": {
                "exception.type": error_type, "exception.message": message}}]
        spans.append((name, kind, role == "root", status, _fresh(attrs), events, message))
    return spans


def _fresh(attrs: dict) -> dict:
    """The dict with new key and string objects, as a protobuf decoder makes for every span.

    Literals would be the same interned objects, hash cached, in every span, letting dict
    and tuple comparisons stop at an identity check that real traffic never gets.
    """
    return {"".join(key): "".join(value) if isinstance(value, str) else value
            for key, value in attrs.items()}


def run(spans: list[Span]) -> float:
    start = time.perf_counter()
    for name, kind, is_root, status, attrs, events, message in spans:
        classify(name, kind, is_root, status, attrs, events, message)
        normalise(attrs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spans = build(args.spans, args.seed)
    best = min(run(spans) for _ in range(args.repeat))
    print(json.dumps({
        "benchmark": "classify", "spans": len(spans),
        "us_per_span": round(best / len(spans) * 1e6, 3),
        "spans_per_s": round(len(spans) / best),
    }))


if __name__ == "__main__":
    main()
