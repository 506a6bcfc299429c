"""Spans are classified at ingest and rolled up per minute, once each, duplicates ignored."""

from __future__ import annotations

import json

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agenttop.analysis.buckets import duration_bucket
from tests.conftest import read_db
from tests.test_bad_input import TRACES, call, span, traces_request

MINUTE = 60 * 10**9
T0 = 1_700_000_000 * 10**9 // MINUTE * MINUTE  # the start of a minute


def attrs(**values: object) -> list[KeyValue]:
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, int):
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(string_value=str(value))))
    return out


def timed(n: int, start: int, duration_ms: int, **kw) -> object:
    return span(n, start_time_unix_nano=start, end_time_unix_nano=start + duration_ms * 10**6,
                **kw)


def test_layers_failures_and_rollups(server, db_path):
    tid = b"\x05" * 16
    root = timed(1, T0, 6000, trace_id=tid, name="invoke_agent support",
                 attributes=attrs(gen_ai__operation__name="invoke_agent"))
    chat = timed(2, T0 + 10**9, 1200, trace_id=tid, parent_span_id=root.span_id,
                 name="chat gpt-4o",
                 attributes=attrs(gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
                                  gen_ai__usage__input_tokens=700, gen_ai__usage__output_tokens=50,
                                  gen_ai__response__finish_reasons="length"))
    tool = timed(3, T0 + 2 * 10**9, 30000, trace_id=tid, parent_span_id=root.span_id,
                 name="execute_tool lookup",
                 attributes=attrs(gen_ai__operation__name="execute_tool",
                                  error__type="TimeoutError"),
                 status={"code": 2, "message": "timed out"})
    memory = timed(4, T0 + MINUTE + 1, 15, trace_id=tid, parent_span_id=root.span_id,
                   name="retrieval kb",
                   attributes=attrs(gen_ai__operation__name="retrieval",
                                    db__vector__query__result_count=0))
    body = traces_request(root, chat, tool, memory)
    call(server, TRACES, body)
    call(server, TRACES, body)  # a retrying exporter sends it all again

    conn = read_db(db_path)
    layers = {r["name"]: (r["layer"], r["failure"]) for r in conn.execute("SELECT * FROM spans")}
    assert layers == {
        "invoke_agent support": ("runtime", None),
        "chat gpt-4o": ("prompt", None),
        "execute_tool lookup": ("tool", "timeout"),
        "retrieval kb": ("memory", None),
    }
    chat_row = conn.execute("SELECT * FROM spans WHERE name = 'chat gpt-4o'").fetchone()
    assert chat_row["input_tokens"] == 700 and chat_row["output_tokens"] == 50
    genai = json.loads(chat_row["genai"])
    assert genai["model"] == "gpt-4o" and genai["truncated"] == 1

    minutes = {(r["minute"] * MINUTE, r["layer"]): r for r in conn.execute(
        "SELECT * FROM layer_minutes")}
    assert set(minutes) == {(T0, "runtime"), (T0, "prompt"), (T0, "tool"),
                            (T0 + MINUTE, "memory")}
    tool_row = minutes[(T0, "tool")]
    assert (tool_row["spans"], tool_row["failures"], tool_row["f_timeout"]) == (1, 1, 1)
    prompt_row = minutes[(T0, "prompt")]
    assert (prompt_row["spans"], prompt_row["input_tokens"], prompt_row["truncated"]) == (1, 700, 1)
    memory_row = minutes[(T0 + MINUTE, "memory")]
    assert (memory_row["retrievals"], memory_row["empty_retrievals"]) == (1, 1)
    assert conn.execute("SELECT sum(spans) FROM layer_minutes").fetchone()[0] == 4

    trace = conn.execute("SELECT * FROM traces").fetchone()
    assert trace["layers"] == "memory,prompt,runtime,tool" and trace["span_count"] == 4
    assert trace["error_count"] == 1 and trace["finding_count"] == 0

    buckets = {(r["layer"], r["bucket"]): r["count"]
               for r in conn.execute("SELECT * FROM layer_minute_durations")}
    assert buckets[("tool", duration_bucket(30000 * 10**6))] == 1
    assert buckets[("runtime", duration_bucket(6000 * 10**6))] == 1
    assert sum(buckets.values()) == 4
