"""Agent-shaped OTLP requests built directly as protobuf, for benchmarks.

A trace is what a support agent emits for one turn: an ``invoke_agent`` root, LLM chat
calls with prompts and completions, tool calls, memory retrievals, a checkpoint, and an
auth check, with the attributes the OpenTelemetry GenAI conventions put on each.
"""

from __future__ import annotations

import json
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

WORDS = [
    "order", "refund", "shipping", "account", "invoice", "policy", "customer", "agent",
    "please", "status", "delivery", "update", "address", "payment", "warranty", "return",
    "product", "question", "thanks", "support", "ticket",
]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


CONVERSATIONS = 20_000
# A fleet: 50 agents, each with its own ten of 500 tools and two of 20 models.
AGENTS = 50
TOOLS_PER_AGENT = 10
MODELS = (
    *(("openai", m) for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini",
                                "gpt-4.1-nano", "o3", "o4-mini", "gpt-5", "gpt-5-mini")),
    *(("anthropic", m) for m in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1",
                                   "claude-3-5-haiku-latest")),
    *(("google", m) for m in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash")),
    ("mistral", "mistral-large-latest"), ("mistral", "mistral-small-latest"),
    ("vllm", "acme-support-8b-ft"), ("vllm", "acme-research-70b-ft"),
)


def _span_attrs(rng: random.Random, role: str, i: int, agent: int = 0
                ) -> tuple[str, int, dict]:
    if role == "root":
        name = f"agent-{agent:02d}"
        return f"invoke_agent {name}", Span.SPAN_KIND_SERVER, {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name,
            # 20,000 conversations: a million spans (100,000 traces) make ~5 turns each.
            "gen_ai.conversation.id": f"conv-{rng.randrange(CONVERSATIONS)}",
            "thread_id": f"t-{rng.randrange(10**6)}", "user.id": f"u{rng.randrange(1000)}",
        }
    if role == "chat":
        messages = [{"role": "user", "parts": [{"type": "text", "content": _text(rng, 60)}]}]
        output = [{"role": "assistant", "parts": [{"type": "text", "content": _text(rng, 80)}],
                   "finish_reason": "stop"}]
        provider, model = MODELS[(agent + rng.choice((0, 7))) % len(MODELS)]
        return f"chat {model}", Span.SPAN_KIND_CLIENT, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
            "gen_ai.request.model": model, "gen_ai.response.model": f"{model}-2025-08-06",
            "gen_ai.usage.input_tokens": rng.randrange(100, 4000),
            "gen_ai.usage.output_tokens": rng.randrange(10, 800),
            "gen_ai.request.temperature": 0.2,
            "gen_ai.response.finish_reasons": "stop",
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps(output),
        }
    if role == "tool":
        tool = f"tool_{agent * TOOLS_PER_AGENT + rng.randrange(TOOLS_PER_AGENT):03d}"
        return f"execute_tool {tool}", Span.SPAN_KIND_INTERNAL, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": f"call_{i}_{rng.randrange(10**9)}",
            "gen_ai.tool.call.arguments": json.dumps({"order_id": rng.randrange(10**6)}),
            "gen_ai.tool.call.result": json.dumps({"status": rng.choice(WORDS)}),
        }
    if role == "memory":
        return "retrieval kb", Span.SPAN_KIND_CLIENT, {
            "gen_ai.operation.name": "retrieval", "db.system.name": "chroma",
            "db.collection.name": "kb", "db.vector.query.top_k": 5,
            "db.vector.query.result_count": rng.randrange(0, 6),
            "gen_ai.request.model": "text-embedding-3-small",
        }
    if role == "checkpoint":
        return "checkpoint write", Span.SPAN_KIND_INTERNAL, {
            "langgraph.checkpoint.ns": "support", "db.system.name": "sqlite",
            "db.operation.name": "INSERT",
        }
    return "POST /auth/verify", Span.SPAN_KIND_CLIENT, {
        "http.request.method": "POST", "url.full": "https://auth.internal/verify",
        "http.response.status_code": 200, "server.address": "auth.internal",
    }


ROLES = ("root", "auth", "chat", "memory", "tool", "chat", "tool", "memory", "chat",
         "checkpoint")


def trace_spans(rng: random.Random, start_ns: int, n: int = 10, fail_rate: float = 0.02,
                trace_id: bytes | None = None) -> list[Span]:
    trace_id = trace_id or rng.randbytes(16)
    root_id = rng.randbytes(8)
    agent = rng.randrange(AGENTS)
    spans = []
    t = start_ns
    for i in range(n):
        role = ROLES[i % len(ROLES)] if i else "root"
        name, kind, attrs = _span_attrs(rng, role, i, agent)
        duration = rng.randrange(5_000_000, 900_000_000)
        failed = i and rng.random() < fail_rate
        span = Span(
            trace_id=trace_id, span_id=root_id if i == 0 else rng.randbytes(8),
            parent_span_id=b"" if i == 0 else root_id, name=name, kind=kind,
            start_time_unix_nano=t, end_time_unix_nano=t + duration,
            attributes=[_kv(k, v) for k, v in attrs.items()],
            status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK,
                          message="upstream timeout" if failed else ""),
        )
        if failed:
            span.attributes.append(_kv("error.type", "TimeoutError"))
            ev = span.events.add(name="exception", time_unix_nano=t + duration)
            ev.attributes.extend([_kv("exception.type", "TimeoutError"),
                                  _kv("exception.message", "tool call timed out after 30s")])
        spans.append(span)
        t += duration // 4
    return spans


def trace_request(rng: random.Random, spans: int = 500, start_ns: int = 1_700_000_000 * 10**9,
                  service: str = "support-agent") -> ExportTraceServiceRequest:
    """One Export request of ``spans`` spans, ten spans per trace."""
    out: list[Span] = []
    t = start_ns
    while len(out) < spans:
        out.extend(trace_spans(rng, t, n=min(10, spans - len(out))))
        t += 1_000_000_000
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=out)])
    resource_spans.scope_spans[0].scope.name = "agent.support"
    resource_spans.resource.attributes.extend(
        [_kv("service.name", service), _kv("service.version", "1.4.2"),
         _kv("deployment.environment.name", "bench")]
    )
    return ExportTraceServiceRequest(resource_spans=[resource_spans])
