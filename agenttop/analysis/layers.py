"""Layer and failure classification of spans, and GenAI attribute normalisation.

This module owns three decisions made once per span at ingest:

- ``classify``: which layer of an agent system a span belongs to (prompt, tool, memory,
  runtime, auth, other) and, if it failed, why (``FAILURES``);
- ``failure_of``: whether a span failed and the category of that failure;
- ``normalise``: the provider/model/tokens/tool/agent/session fields of a span, unified
  across OTel GenAI (current and deprecated names), OpenInference, OpenLLMetry/Traceloop,
  LangChain/LangSmith/LangGraph and MCP attribute conventions.

It is pure and headless (no textual, no rich, no I/O) and sits on the receiver's hot path,
so the common case is a handful of dict lookups: attribute keys are compared exactly as
given (OTel keys are lowercase by convention) and only the few values looked at are
lowercased, and only when an exact lookup misses.

Judgement calls, beyond the ordered rules of the layer table (README, "Layers"):

- Explicit operation signals (``gen_ai.operation.name``, ``openinference.span.kind``,
  ``traceloop.span.kind``, ``langsmith.span.kind``, ``llm.request.type``,
  ``mcp.method.name``) are resolved before inferred ones (a model, tool name or
  ``db.system`` merely being present, a ``checkpoint`` name, root/SERVER position).
  Within each tier the rule order holds (tool, memory, prompt, runtime). Without this, an
  ``invoke_agent`` span, which OTel GenAI gives a ``gen_ai.request.model``, would land on
  the prompt layer.
- A span whose status is explicitly OK did not fail, even with ``error.type`` or an
  ``exception`` event: OTel makes OK a final, deliberate verdict (a handled exception, a
  retry that succeeded).
- A SERVER span with unset status that answered HTTP 401/403/407 or gRPC
  UNAUTHENTICATED/PERMISSION_DENIED failed with ``auth``: OTel leaves server-side 4xx
  unset, yet a rejected caller is exactly what the auth layer watches.
- A failed span on an authentication endpoint (login, oauth, token, sso... in its route,
  URL or RPC service/method, or in the name of a span with no GenAI kind) is on the auth
  layer whatever its failure category (an auth service that times out is an auth failure).
  A successful call to the same endpoint is not: rule 1 is about failures only.
- Connection failures (APIConnectionError, ConnectError, connection refused/reset) and
  provider overload (Anthropic 529) are ``server``: like gRPC UNAVAILABLE, the dependency
  could not serve. HTTP 422 is ``schema`` (the server's validation rejected the payload).
- An error named like a tool error (ToolException, MCP ``error.type=tool_error``) is
  ``tool_error`` on any layer; a generic ``error`` becomes ``tool_error`` on the tool layer.
- Category signals are read most specific first: ``error.type``, then ``exception.type``,
  then HTTP/gRPC/JSON-RPC codes, then exception and status messages (including an
  "Error code: 429" inside them); a generic name (RuntimeError, ``_OTHER``) defers.
- ``normalise``: the request model beats the response model; provider and operation are
  lowercased; the lesson's ``thread_id`` counts as a session; ``total_tokens`` is only
  reported when a convention sends it, never summed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from agenttop.store.rows import LAYERS

_LAYER_SET = frozenset(LAYERS)
# Rule order: the lower wins when two explicit signals disagree.
_RANK = {"tool": 2, "memory": 3, "prompt": 4, "runtime": 5, "other": 6}


def _cased(table: dict[str, str]) -> dict[str, str]:
    """The table plus UPPER and Title spellings of its keys.

    Values are compared case-insensitively; pre-registering the usual spellings
    (OpenInference sends ``LLM``) saves a ``lower()`` per span.
    """
    out: dict[str, str] = {}
    for key, value in table.items():
        for variant in (key, key.upper(), key.title()):
            out.setdefault(variant, value)
    return out


_GEN_AI_OP = _cased({
    "execute_tool": "tool",
    "retrieval": "memory", "embeddings": "memory", "embedding": "memory",
    "vector_db_retrieve": "memory",  # OpenLLMetry's retrievers
    "chat": "prompt", "text_completion": "prompt", "generate_content": "prompt",
    "completion": "prompt",
    "invoke_agent": "runtime", "create_agent": "runtime", "invoke_workflow": "runtime",
    "plan": "runtime", "handle_conversation_turn": "runtime",
    "apply_guardrail": "prompt",
    # create_memory, update_memory, upsert_memory, delete_memory, search_memory: any
    # operation naming memory is memory (_explicit_lookup).
})
_OPENINFERENCE_KIND = _cased({
    "tool": "tool",
    "retriever": "memory", "reranker": "memory", "embedding": "memory",
    "llm": "prompt", "guardrail": "prompt", "evaluator": "prompt", "prompt": "prompt",
    "agent": "runtime", "chain": "runtime",
})
_TRACELOOP_KIND = _cased({
    "tool": "tool", "workflow": "runtime", "task": "runtime", "agent": "runtime",
})
# LangSmith's OTel export of LangChain run types; a parser run is where an LLM's output
# fails its schema, which the lesson puts on the prompt layer.
_LANGSMITH_KIND = _cased({
    "tool": "tool", "retriever": "memory", "embedding": "memory",
    "llm": "prompt", "prompt": "prompt", "parser": "prompt", "chain": "runtime",
})
_LLM_REQUEST_TYPE = _cased({
    "chat": "prompt", "completion": "prompt", "embedding": "memory", "rerank": "memory",
})
# MCP: the calls that do an agent's work; every other method (initialize, ping, */list,
# server/discover, notifications/*) is protocol plumbing, "other" (see _explicit_lookup).
_MCP_METHOD = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "memory"}

# (attribute key, table) for the explicit tier; mcp.method.name values are lowercase by spec.
_EXPLICIT = (
    ("gen_ai.operation.name", _GEN_AI_OP),
    ("openinference.span.kind", _OPENINFERENCE_KIND),
    ("traceloop.span.kind", _TRACELOOP_KIND),
    ("langsmith.span.kind", _LANGSMITH_KIND),
    ("llm.request.type", _LLM_REQUEST_TYPE),
    ("mcp.method.name", _MCP_METHOD),
)
# Presence tests below use frozenset.isdisjoint(attributes): one C-level pass over a span's
# few keys, cheaper than a Python loop of .get() calls over every alias.
_OPERATION = "gen_ai.operation.name"
_EXPLICIT_KEYS = frozenset(key for key, _ in _EXPLICIT)
_OTHER_EXPLICIT_KEYS = _EXPLICIT_KEYS - {_OPERATION}
_TOOL_NAME_KEYS = frozenset(("gen_ai.tool.name", "tool.name"))
_MODEL_KEYS = frozenset((
    "gen_ai.request.model", "llm.model_name", "gen_ai.response.model", "llm.request.model",
    "ls_model_name", "metadata.ls_model_name", "langsmith.metadata.ls_model_name",
))
_MEMORY_KEYS = frozenset((
    "db.system.name", "db.system", "db.vector.query.top_k", "db.vector.query.result_count",
    "db.vector.collection.name",
    # Set by checkpoint savers. Not LangGraph's per-node ``langgraph_checkpoint_ns``
    # metadata: every node span carries that, chat calls included.
    "langgraph.checkpoint.ns", "langgraph.checkpoint.id", "langgraph.checkpoint_id",
    "checkpoint.id",
))
_INFERRED_KEYS = _TOOL_NAME_KEYS | _MODEL_KEYS | _MEMORY_KEYS

# ---------------------------------------------------------------------------- failures

_HTTP_KEYS = ("http.response.status_code", "http.status_code")
_RPC_KEYS = ("rpc.grpc.status_code", "rpc.response.status_code", "rpc.jsonrpc.error_code")

_HTTP_CATEGORY = {401: "auth", 403: "auth", 407: "auth", 429: "rate_limit",
                  408: "timeout", 504: "timeout", 522: "timeout", 524: "timeout",
                  422: "schema"}
# gRPC codes are 0..16 and JSON-RPC (MCP) errors negative, so one table serves both.
_RPC_CATEGORY = {
    16: "auth", 7: "auth", 8: "rate_limit", 4: "timeout", 13: "server", 14: "server",
    15: "server",
    -32700: "schema", -32600: "schema", -32602: "schema", -32603: "server",
    -32001: "timeout",  # MCP SDKs' RequestTimeout
}
_RPC_NAMES = {
    "unauthenticated": "auth", "permission_denied": "auth", "resource_exhausted": "rate_limit",
    "deadline_exceeded": "timeout", "internal": "server", "unavailable": "server",
    "data_loss": "server",
}
_AUTH_DENIALS = frozenset((401, 403, 407))
_RPC_AUTH_DENIALS = frozenset((16, 7))

# Substrings of a lowercased name or message with ``_``, ``-`` and spaces removed, so that
# ``RateLimitError``, ``rate_limit`` and "rate limit reached" meet. First category wins.
_NEEDLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth", (
        "authenticat", "unauthori", "notauthori", "permissiondenied", "forbidden",
        "invalidtoken", "accessdenied", "invalidapikey", "incorrectapikey", "apikeyinvalid",
        "invalidcredential", "badcredential", "expiredtoken", "tokenexpired",
        "expiredsignature", "invalidgrant", "nocredential", "autherror", "authorizationerror",
        "authorisationerror", "loginrequired", "loginfailed",
    )),
    ("rate_limit", ("ratelimit", "toomanyrequests", "resourceexhausted", "quota", "throttl")),
    ("timeout", ("timeout", "timedout", "deadlineexceeded")),
    ("schema", (
        "validation", "jsondecode", "outputparser", "parseerror", "schema", "invalidjson",
    )),
    ("tool_error", ("toolerror", "toolexception")),
    ("server", (
        "internalservererror", "internalerror", "servererror", "serviceunavailable",
        "unavailable", "badgateway", "apiconnectionerror", "connectionerror", "connecterror",
        "connectionrefused", "connectionreset", "remotedisconnected", "serverdisconnected",
        "overloaded", "dataloss",
    )),
)
_SQUASH = str.maketrans("", "", "_- ")
# "Error code: 429 - {...}" (OpenAI/Anthropic SDKs), "status 503", "HTTP 401".
_CODE_IN_TEXT = re.compile(r"(?:status(?:[ _]?code)?|error[ _]?code|http)\s*[:=]?\s*(\d{3})\b",
                           re.IGNORECASE)

_AUTH_ROUTE_KEYS = ("http.route", "url.template", "url.path", "http.target", "url.full",
                    "http.url", "rpc.service", "rpc.method")
_AUTH_SUBSTRINGS = ("oauth", "login", "logon", "signin", "authenticat", "authoriz", "authoris",
                    "openid", "jwks", "saml", "oidc")
# Whole words only: "token" must not match count_tokens, "auth" must not match /authors.
_AUTH_WORDS = frozenset(("auth", "authn", "authz", "token", "sso", "sts"))
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _int(value: object) -> int | None:
    """An int from an int, an integral float or a numeric string; bools are not counts."""
    if value.__class__ is int:
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _from_text(text: str) -> str | None:
    squashed = text.lower().translate(_SQUASH)
    for category, needles in _NEEDLES:
        for needle in needles:
            if needle in squashed:
                return category
    return None


def _from_name(value: object) -> str | None:
    """Category from an error/exception type name, or the status code it stands for."""
    if not isinstance(value, str) or not value:
        return None
    if value.isdigit():
        # HTTP semconv: error.type is the status code as a string when there is no exception.
        return _HTTP_CATEGORY.get(int(value)) or ("server" if value[0] == "5" else None)
    return _RPC_NAMES.get(value.lower()) or _from_text(value)


def _from_http(attributes: dict[str, object]) -> str | None:
    for key in _HTTP_KEYS:
        code = _int(attributes.get(key))
        if code is not None:
            return _HTTP_CATEGORY.get(code) or ("server" if 500 <= code <= 599 else None)
    return None


def _from_rpc(attributes: dict[str, object]) -> str | None:
    for key in _RPC_KEYS:
        value = attributes.get(key)
        if value is None:
            continue
        code = _int(value)
        if code is not None:
            if code:
                return _RPC_CATEGORY.get(code)
        elif isinstance(value, str):
            return _RPC_NAMES.get(value.lower())
    return None


_TRACEBACK = "Traceback (most recent call last)"


def _without_traceback(text: str) -> str:
    """A message without the stack trace some instrumentations put in it: only the
    exception lines. A source line such as ``return fut.result(timeout)`` says nothing
    about what failed."""
    if _TRACEBACK not in text:
        return text
    return "\n".join(line for line in text.splitlines()
                     if line and not line[0].isspace() and not line.startswith(_TRACEBACK)
                     and not line.startswith(("During handling", "The above exception")))


def _from_message(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    text = _without_traceback(text)
    found = _from_text(text)
    if found is None:
        match = _CODE_IN_TEXT.search(text)
        if match:
            code = int(match.group(1))
            found = _HTTP_CATEGORY.get(code) or ("server" if 500 <= code <= 599 else None)
    return found


def _exceptions(events: list[dict]) -> list[dict]:
    return [e.get("attributes") or {} for e in events if e.get("name") == "exception"]


def _category(attributes: dict[str, object], exceptions: Sequence[dict],
              status_message: str) -> str:
    """Most specific category: type names, then protocol codes, then free text."""
    found = _from_name(attributes.get("error.type"))
    if found:
        return found
    for exc in exceptions:
        found = _from_name(exc.get("exception.type"))
        if found:
            return found
    found = _from_http(attributes) or _from_rpc(attributes)
    if found:
        return found
    for exc in exceptions:
        found = _from_message(exc.get("exception.message"))
        if found:
            return found
    return _from_message(status_message) or "error"


def _server_auth_denial(attributes: dict[str, object]) -> bool:
    for key in _HTTP_KEYS:
        code = attributes.get(key)
        if code is not None:
            return _int(code) in _AUTH_DENIALS
    code = attributes.get("rpc.grpc.status_code")
    if code is not None:
        return _int(code) in _RPC_AUTH_DENIALS
    code = attributes.get("rpc.response.status_code")
    return isinstance(code, str) and _RPC_NAMES.get(code.lower()) == "auth"


def _failure(status_code: int, attributes: dict[str, object], events: list[dict],
             status_message: str, kind: int) -> str | None:
    if status_code == 1:
        return None
    error_type = attributes.get("error.type")
    failed = status_code == 2 or (error_type is not None and error_type != "")
    if events:
        exceptions = _exceptions(events)
        failed = failed or bool(exceptions)
    else:
        exceptions = ()
    if failed:
        return _category(attributes, exceptions, status_message)
    if kind == 2 and _server_auth_denial(attributes):
        return "auth"
    return None


def failure_of(status_code: int, attributes: dict, events: list[dict],
               status_message: str = "", kind: int = 0) -> str | None:
    """None if the span did not fail, else its category (one of ``FAILURES``).

    A span failed if its status is ERROR, ``error.type`` is set (``_OTHER`` included) or
    it has an ``exception`` event, unless its status is explicitly OK. ``kind`` (OTLP
    SpanKind) only matters for SERVER spans, whose rejected callers (401/403,
    UNAUTHENTICATED) count as auth failures although OTel leaves their status unset.
    A generic ``error`` here may still become ``tool_error`` in ``classify``.
    """
    return _failure(status_code, attributes, events, status_message, kind)


# ------------------------------------------------------------------------------ layers


def _explicit_lookup(table: dict[str, str], key: str, value: object) -> str | None:
    if value.__class__ is not str:
        return None  # a list or dict here is malformed, and unhashable
    layer = table.get(value)  # type: ignore[call-overload]
    if layer is None:
        lowered = value.lower()  # type: ignore[union-attr]
        layer = table.get(lowered)
        if layer is None and key == "gen_ai.operation.name" and "memory" in lowered:
            layer = "memory"  # search_memory, update_memory, ...
        elif layer is None and key == "mcp.method.name" and lowered:
            layer = "other"
    return layer


def _explicit_layer(attributes: dict[str, object]) -> str | None:
    # gen_ai.operation.name is by far the most common signal, so it is tried inline before
    # the others are looked for at all.
    best: str | None = None
    value = attributes.get(_OPERATION)
    if value is not None:
        best = _GEN_AI_OP.get(value) if value.__class__ is str else None  # type: ignore[call-overload]
        if best is None:
            best = _explicit_lookup(_GEN_AI_OP, _OPERATION, value)
        if best == "tool":
            return best
    if _OTHER_EXPLICIT_KEYS.isdisjoint(attributes):
        return best
    for key, table in _EXPLICIT[1:]:
        value = attributes.get(key)
        if value is None:
            continue
        layer = _explicit_lookup(table, key, value)
        if layer is not None and (best is None or _RANK[layer] < _RANK[best]):
            best = layer
            if layer == "tool":
                break
    return best


def _inferred_layer(name: str, kind: int, is_root: bool, attributes: dict[str, object]) -> str:
    some = not _INFERRED_KEYS.isdisjoint(attributes)
    has_model = some and not _MODEL_KEYS.isdisjoint(attributes)
    if some and not has_model and not _TOOL_NAME_KEYS.isdisjoint(attributes):
        return "tool"
    if (some and not _MEMORY_KEYS.isdisjoint(attributes)) or "checkpoint" in name.lower():
        return "memory"
    if has_model:
        return "prompt"
    if kind == 3:
        # A client span named by the GenAI convention, "{operation} {model}": a failed call
        # may carry no attributes at all (openlit's "chat gpt-4o-mini" on a 429).
        named = named_call(name)
        if named is not None:
            return _GEN_AI_OP[named[0].lower()]
    if is_root or kind == 2:
        return "runtime"
    return "other"


# Operations that call a model, named "{operation} {model}" by the GenAI convention. Others
# name something else after the operation: "vector_db_retrieve VectorStoreRetriever",
# "invoke_agent support-agent".
_MODEL_CALLS = frozenset(("chat", "text_completion", "generate_content", "completion",
                          "embeddings", "embedding"))


def named_call(name: str) -> tuple[str, str] | None:
    """(operation, model) of a span named by the GenAI convention "{operation} {model}",
    such as "chat gpt-4o-mini"; None for any other name."""
    operation, sep, model = name.partition(" ")
    model = model.strip()
    if not sep or not model or " " in model or operation.lower() not in _MODEL_CALLS:
        return None
    return operation, model


def _is_auth_operation(name: str, attributes: dict[str, object]) -> bool:
    texts = [v for k in _AUTH_ROUTE_KEYS if isinstance(v := attributes.get(k), str)]
    # A span name says little on a GenAI span ("execute_tool get_token"); on a plain
    # HTTP/RPC/internal span it is the operation.
    if _EXPLICIT_KEYS.isdisjoint(attributes):
        texts.append(name)
    for text in texts:
        # A query string is data, not the operation: ?access_token= is on many URLs.
        text = text.split("?", 1)[0]
        lowered = text.lower()
        if any(s in lowered for s in _AUTH_SUBSTRINGS):
            return True
        if any(w.lower() in _AUTH_WORDS for w in _WORD.findall(text)):
            return True
    return False


def _mcp_named(name: str) -> str | None:
    """OpenLLMetry names an MCP request "{method}.mcp" ("prompts/get.mcp") and gives it no
    mcp.method.name: the method's layer, as for that attribute."""
    if not name.endswith(".mcp"):
        return None
    method = name[:-4]
    if "/" not in method and method not in ("initialize", "ping"):
        return None
    return _MCP_METHOD.get(method, "other")


def classify(name: str, kind: int, is_root: bool, status_code: int,
             attributes: dict[str, object], events: list[dict],
             status_message: str = "") -> tuple[str, str | None]:
    """(layer, failure) for one span by the ordered layer rules (first match wins).

    ``kind`` is the OTLP SpanKind int (0 unspecified, 1 internal, 2 server, 3 client,
    4 producer, 5 consumer); ``status_code`` is 0 unset, 1 ok, 2 error; attribute values
    are plain Python; events are ``{"name", "time_ns", "attributes"}`` dicts.
    ``status_message`` is optional and only refines the failure category.
    """
    failure = _failure(status_code, attributes, events, status_message, kind)

    layer: str | None = None
    override = attributes.get("agenttop.layer")
    if override.__class__ is str:
        lowered = override.lower()  # type: ignore[union-attr]
        if lowered in _LAYER_SET:
            layer = lowered
    if layer is None and failure is not None and (
            failure == "auth" or _is_auth_operation(name, attributes)):
        layer = "auth"
    if layer is None:
        layer = (_explicit_layer(attributes) or _mcp_named(name)
                 or _inferred_layer(name, kind, is_root, attributes))

    if failure == "error" and layer == "tool":
        failure = "tool_error"
    return layer, failure


# -------------------------------------------------------------------------- normalise

# field -> attribute keys, most authoritative first.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system",
                 "ls_provider", "metadata.ls_provider", "langsmith.metadata.ls_provider"),
    # Request model first: it is what the developer chose and groups stably, whereas the
    # response model carries a dated snapshot suffix.
    "model": ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name",
              "embedding.model_name", "llm.request.model", "llm.response.model",
              "ls_model_name", "traceloop.association.properties.ls_model_name",
              "metadata.ls_model_name", "langsmith.metadata.ls_model_name"),
    "operation": ("gen_ai.operation.name",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                     "llm.token_count.prompt", "llm.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "llm.usage.completion_tokens"),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.token_count.total",
                     "llm.usage.total_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens",),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                           "gen_ai.usage.cache_write.input_tokens"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens",),
    "tool": ("gen_ai.tool.name", "tool.name"),
    "agent": ("gen_ai.agent.name", "agent.name"),
    # thread_id is the lesson's own session attribute. The session is the conversation:
    # an MCP session is a transport connection, which many conversations may share, so it
    # is a field of its own.
    "session": ("gen_ai.conversation.id", "session.id", "thread_id",
                "traceloop.association.properties.session_id",
                "traceloop.association.properties.thread_id"),
    "mcp_session": ("mcp.session.id",),
    "user": ("user.id", "enduser.id"),
    "finish_reasons": ("gen_ai.response.finish_reasons", "llm.response.finish_reason",
                       "llm.response.finish_reasons", "llm.finish_reason"),
    # Time to first token, in seconds, where the instrumentation measures it (openlit).
    "ttft_s": ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk"),
}
# How a field's value is converted. Small ints rather than functions: normalise() runs
# per span and an inline branch is several times cheaper than a call.
_TEXT, _ID, _LOWER, _TOKENS, _LIST, _SECONDS = range(6)
_CONVERSION = {"input_tokens": _TOKENS, "output_tokens": _TOKENS, "total_tokens": _TOKENS,
               "cache_read_tokens": _TOKENS, "cache_write_tokens": _TOKENS,
               "reasoning_tokens": _TOKENS, "ttft_s": _SECONDS,
               "finish_reasons": _LIST, "session": _ID, "mcp_session": _ID, "user": _ID,
               # OpenLLMetry sends gen_ai.system="OpenAI" where OTel GenAI says "openai".
               "provider": _LOWER, "operation": _LOWER}
_ALIAS: dict[str, tuple[str, int, int]] = {
    key: (field, rank, _CONVERSION.get(field, _TEXT))
    for field, keys in _FIELD_KEYS.items() for rank, key in enumerate(keys)
}
# Keys whose field or value depends on another attribute; ranked after every plain alias.
_CONTEXT_KEYS = ("llm.request.type", "openinference.span.kind", "traceloop.span.kind",
                 "traceloop.entity.name", "mcp.method.name", "langgraph.node",
                 "metadata.langgraph_node", "langsmith.metadata.langgraph_node",
                 "llm.invocation_parameters", "metadata")
_INTERESTING = frozenset(_ALIAS) | frozenset(_CONTEXT_KEYS)

_OP_FROM_REQUEST_TYPE = {"chat": "chat", "completion": "text_completion",
                         "embedding": "embeddings", "rerank": "rerank"}
# Only kinds with an exact OTel GenAI counterpart; an OpenInference LLM span may be chat
# or text completion, so it gets no operation rather than a guessed one.
_OP_FROM_OPENINFERENCE = {"tool": "execute_tool", "embedding": "embeddings",
                          "retriever": "retrieval", "agent": "invoke_agent"}
_OP_FROM_TRACELOOP = {"tool": "execute_tool", "agent": "invoke_agent",
                      "workflow": "invoke_workflow"}


def _finish_reasons(value: object) -> list[str] | None:
    if value.__class__ is list or value.__class__ is tuple:
        reasons = list(value)  # type: ignore[call-overload]
        for i, reason in enumerate(reasons):
            if reason.__class__ is not str:
                reasons[i] = str(reason)
        return reasons
    if isinstance(value, str) and value:
        # Some exporters flatten the array into its JSON text.
        if value[0] == "[":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return [v if isinstance(v, str) else str(v) for v in parsed]
        return [value]
    return None


def _seconds(value: object) -> float | None:
    """A non-negative finite number of seconds (numeric strings accepted), else None."""
    if value.__class__ is str:
        try:
            value = float(value)  # type: ignore[arg-type]
        except ValueError:
            return None
    if value.__class__ not in (int, float) or not 0 <= value < 1e9:  # type: ignore[operator]
        return None
    return float(value)  # type: ignore[arg-type]


def _lower_str(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _context_fields(attributes: dict[str, object], out: dict[str, object]) -> None:
    if "operation" not in out:
        op = _lower_str(attributes.get("llm.request.type"))
        if op is not None:
            op = _OP_FROM_REQUEST_TYPE.get(op, op)
        else:
            kind = _lower_str(attributes.get("openinference.span.kind"))
            op = _OP_FROM_OPENINFERENCE.get(kind) if kind else None
        if op is None:
            kind = _lower_str(attributes.get("traceloop.span.kind"))
            op = _OP_FROM_TRACELOOP.get(kind) if kind else None
        if op is None:
            method = attributes.get("mcp.method.name")
            if isinstance(method, str) and method:
                op = "execute_tool" if method == "tools/call" else method
        if op is not None:
            out["operation"] = op
    entity = attributes.get("traceloop.entity.name")
    if isinstance(entity, str) and entity:
        kind = _lower_str(attributes.get("traceloop.span.kind"))
        if kind == "tool" or kind == "agent":
            out.setdefault(kind, entity)
    if "model" not in out:
        # OpenInference: a failed call has its model only among the request's parameters.
        model = _json_field(attributes.get("llm.invocation_parameters"), "model")
        if model:
            out["model"] = model
    if "agent" not in out:
        # A LangGraph node is the agent of the spans inside it (a multi-agent graph has
        # one node per agent), as each instrumentation spells it.
        for key in ("langgraph.node", "metadata.langgraph_node",
                    "langsmith.metadata.langgraph_node",
                    "traceloop.association.properties.langgraph_node"):
            node = attributes.get(key)
            if isinstance(node, str) and node:
                out["agent"] = node
                break
    if "agent" not in out:
        # OpenInference's LangChain instrumentation: the run's metadata as one JSON string.
        node = _json_field(attributes.get("metadata"), "langgraph_node")
        if node:
            out["agent"] = node


def _json_field(value: object, field: str) -> str | None:
    """One non-empty string field of an attribute that holds a JSON object as a string;
    the text is parsed only when it names the field."""
    if not isinstance(value, str) or f'"{field}"' not in value:
        return None
    try:
        found = json.loads(value).get(field)
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and found else None


# (field, conversion, present alias keys best first) per field, and whether a context key
# is present.
_Plan = tuple[tuple[tuple[str, int, tuple[str, ...]], ...], bool]
# Spans from one instrumentation share their key set, so the work of finding which aliases
# are present is cached per key tuple. Bounded in entries and in keys per entry, since the
# tuples pin their key strings: flattened message keys (llm.input_messages.3.message.content)
# make big key sets that vary from span to span, and those are planned afresh each time.
_PLANS: dict[tuple[str, ...], _Plan] = {}
_PLANS_MAX = 1024
_PLAN_KEYS_MAX = 64


def _plan(attributes: dict[str, object]) -> _Plan:
    by_field: dict[str, list[tuple[int, str]]] = {}
    context = False
    # Sorted: set order varies between processes, and it decides the order of the stored
    # ``genai`` keys, which must be the same whichever process decoded the span.
    for key in sorted(_INTERESTING.intersection(attributes)):
        alias = _ALIAS.get(key)
        if alias is None:
            context = True
        else:
            by_field.setdefault(alias[0], []).append((alias[1], key))
    steps = tuple(
        (field, _CONVERSION.get(field, _TEXT), tuple(key for _, key in sorted(ranked)))
        for field, ranked in by_field.items()
    )
    return steps, context


def normalise(attributes: dict[str, object]) -> dict[str, object]:
    """Small dict with only the fields found among: provider, model, operation,
    input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, tool, agent, session, mcp_session, user, finish_reasons, ttft_s.

    Where several conventions give a field, the current OTel GenAI name wins, then its
    deprecated name, then OpenInference, OpenLLMetry, LangSmith metadata and MCP; a value
    that cannot be converted yields to the next name. Token counts are ints (numeric
    strings accepted), finish_reasons a list of strings, provider and operation lowercase,
    ids strings.
    """
    if len(attributes) > _PLAN_KEYS_MAX:
        plan = _plan(attributes)
    else:
        signature = tuple(attributes)
        plan = _PLANS.get(signature)
        if plan is None:
            plan = _plan(attributes)
            if len(_PLANS) >= _PLANS_MAX:
                _PLANS.clear()
            _PLANS[signature] = plan
    steps, context = plan
    out: dict[str, object] = {}
    for field, conversion, keys in steps:
        for key in keys:
            value = attributes[key]
            cls = value.__class__
            if conversion == _TOKENS:
                if cls is not int:
                    value = _int(value)
                    if value is None:
                        continue
            elif conversion == _LIST:
                value = _finish_reasons(value)
                if value is None:
                    continue
            elif conversion == _SECONDS:
                value = _seconds(value)
                if value is None:
                    continue
            elif cls is str:
                if not value or (field == "model" and value == "unknown"):
                    continue  # OpenLLMetry's gen_ai.request.model when it does not know
                if conversion == _LOWER:
                    value = value.lower()  # type: ignore[union-attr]
            elif conversion == _ID and (cls is int or cls is float):
                value = str(value)  # user.id=42: an id, not a number
            else:
                continue
            out[field] = value
            break
    if context:
        _context_fields(attributes, out)
    return out
