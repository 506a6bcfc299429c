"""Oversized values and item counts are cut before storage (and before the PII scan)."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agenttop.config import ServeSettings
from agenttop.otlp.convert import MAX_ATTRIBUTES, MAX_EVENTS, MAX_LINKS, MAX_VALUE_BYTES, clip
from tests.conftest import read_db
from tests.test_bad_input import LOGS, TRACES, call, span, traces_request


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def stored_span(db_path, name: str = "span-1"):
    return read_db(db_path).execute(
        "SELECT attributes, events, links, dropped_counts FROM spans WHERE name = ?", (name,)
    ).fetchone()


def test_clip_keeps_utf8_whole_and_says_how_much_was_cut():
    assert clip("short", 10) == "short"
    text = "é" * 100  # 200 bytes
    out = clip(text, 51)
    head, marker = out.split("…")
    assert head == "é" * 25 and marker == "[truncated 150 bytes]"
    assert clip("x" * 1_234_600, 33) == "x" * 33 + "…[truncated 1,234,567 bytes]"


def test_default_limit_is_64_kib():
    assert MAX_VALUE_BYTES == 64 * 1024
    assert ServeSettings().max_value_kb == 64
    with pytest.raises(ValueError):
        ServeSettings(max_value_kb=0)


def test_long_span_and_event_attributes_are_truncated(make_server, db_path):
    service = make_server(max_value_kb=1)
    huge = "a" * 5000
    body = traces_request(span(1, attributes=[kv("big", huge), kv("small", "ok")],
                               events=[Span.Event(name="e", attributes=[kv("big", huge)])]))
    call(service, TRACES, body)
    attrs, events, _, dropped = stored_span(db_path)
    attrs, events = json.loads(attrs), json.loads(events)
    assert attrs["big"] == "a" * 1024 + "…[truncated 3,976 bytes]"
    assert attrs["small"] == "ok"
    assert events[0]["attributes"]["big"] == attrs["big"]
    assert dropped is None


def test_nested_and_unicode_values_stay_valid_json(make_server, db_path):
    service = make_server(max_value_kb=1)
    nested = AnyValue()
    nested.kvlist_value.values.add(key="inner", value=AnyValue(string_value="€" * 2000))
    nested.kvlist_value.values.add(key="list", value=AnyValue())
    nested.kvlist_value.values[1].value.array_value.values.add(string_value="b" * 4000)
    call(service, TRACES, traces_request(span(1, attributes=[KeyValue(key="n", value=nested)])))
    row = read_db(db_path).execute("SELECT attributes, json_valid(attributes) FROM spans")
    text, valid = row.fetchone()
    assert valid == 1
    value = json.loads(text)["n"]
    assert len(value["inner"].split("…")[0].encode()) <= 1024
    assert value["inner"].endswith("bytes]") and value["list"][0].startswith("b" * 1024 + "…")


def test_truncation_happens_before_the_pii_scan(make_server, db_path):
    # The SSN sits beyond the limit: cut off, so neither stored nor reported as a finding.
    service = make_server(max_value_kb=1)
    call(service, TRACES, traces_request(span(1, attributes=[kv("text", "x " * 600
                                                                 + "ssn 123-45-6789")])))
    conn = read_db(db_path)
    attrs = json.loads(stored_span(db_path)[0])
    assert "123-45-6789" not in attrs["text"] and "[truncated" in attrs["text"]
    assert conn.execute("SELECT count(*) FROM findings").fetchone()[0] == 0


def test_long_log_bodies_and_attributes_are_truncated(make_server, db_path):
    service = make_server(max_value_kb=1)
    request = ExportLogsServiceRequest()
    logs = request.resource_logs.add().scope_logs.add().log_records
    logs.add(body=AnyValue(string_value="L" * 3000), attributes=[kv("k", "v" * 3000)])
    call(service, LOGS, request.SerializeToString())
    body, attrs = read_db(db_path).execute("SELECT body, attributes FROM logs").fetchone()
    assert body == "L" * 1024 + "…[truncated 1,976 bytes]"
    assert json.loads(attrs)["k"] == "v" * 1024 + "…[truncated 1,976 bytes]"


def test_values_under_the_default_limit_are_untouched(server, db_path):
    value = "z" * (MAX_VALUE_BYTES - 10)
    call(server, TRACES, traces_request(span(1, attributes=[kv("v", value)])))
    assert json.loads(stored_span(db_path)[0])["v"] == value


def test_counts_per_span_are_capped_and_recorded(make_server, db_path):
    service = make_server()
    extra = 7
    s = span(1, dropped_attributes_count=3,
             attributes=[kv(f"k{i}", "v") for i in range(MAX_ATTRIBUTES + extra)],
             events=[Span.Event(name=f"e{i}") for i in range(MAX_EVENTS + extra)],
             links=[Span.Link(trace_id=bytes([9]) * 16, span_id=bytes([8]) * 8)
                    for _ in range(MAX_LINKS + extra)])
    call(service, TRACES, traces_request(s))
    attrs, events, links, dropped = stored_span(db_path)
    assert len(json.loads(attrs)) == MAX_ATTRIBUTES
    assert len(json.loads(events)) == MAX_EVENTS
    assert len(json.loads(links)) == MAX_LINKS
    assert json.loads(dropped) == {
        "attributes": 3, "events": 0, "links": 0,  # as reported by the SDK
        "agenttop.attributes": extra, "agenttop.events": extra, "agenttop.links": extra,
    }


def test_spans_under_the_caps_record_no_drops(server, db_path):
    call(server, TRACES, traces_request(span(1, attributes=[kv("a", "b")])))
    assert stored_span(db_path)[3] is None
