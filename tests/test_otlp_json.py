"""OTLP/JSON <-> protobuf: hex ids, integer enums, int64 strings, unknown fields."""

import json

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agenttop.otlp.otlp_json import parse_message, parse_request, to_json

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"

SPEC_EXAMPLE = {
    "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "my.service"}}]},
        "scopeSpans": [{
            "scope": {"name": "my.library", "version": "1.0.0"},
            "spans": [{
                "traceId": TRACE_ID, "spanId": SPAN_ID, "parentSpanId": "eee19b7ec3c1b173",
                "name": "I'm a server span", "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": 1544712661000000000, "kind": 2,
                "attributes": [{"key": "my.span.attr", "value": {"intValue": "42"}}],
                "links": [{"traceId": TRACE_ID, "spanId": SPAN_ID}],
                "status": {"code": 2, "message": "boom"},
                "someFutureField": {"ignored": True},
            }],
        }],
    }],
}


def test_parse_request_reads_hex_ids_and_int64_strings():
    body = json.dumps(SPEC_EXAMPLE).encode()
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(
        parse_request("traces", body))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_ID
    assert span.span_id.hex() == SPAN_ID
    assert span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert span.links[0].trace_id.hex() == TRACE_ID
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1544712661000000000
    assert span.kind == 2 and span.status.code == 2
    assert span.attributes[0].value.int_value == 42


def test_snake_case_names_are_accepted():
    doc = {"resource_spans": [{"scope_spans": [{"spans": [
        {"trace_id": TRACE_ID, "span_id": SPAN_ID, "name": "x"}]}]}]}
    span = parse_message("traces", doc).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_ID and span.name == "x"


def test_round_trip_is_exact():
    message = parse_message("traces", SPEC_EXAMPLE)
    again = parse_message("traces", to_json(message))
    assert again == message
    out = to_json(message)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == TRACE_ID and out["kind"] == 2
    assert out["startTimeUnixNano"] == "1544712660000000000"


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "not a hex"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
     "not a valid OTLP/JSON traces request"),
    (b'{"resourceSpans": "nope"}', "not a valid OTLP/JSON traces request"),
])
def test_bad_bodies_raise_value_error(body, expected):
    with pytest.raises(ValueError, match=expected):
        parse_request("traces", body)


def test_logs_and_metrics_parse():
    logs = parse_request("logs", json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1", "severityNumber": 9, "body": {"stringValue": "hi"},
         "traceId": TRACE_ID, "spanId": SPAN_ID}]}]}]}).encode())
    assert logs
    metrics = parse_request("metrics", json.dumps({"resourceMetrics": [{"scopeMetrics": [{
        "metrics": [{"name": "m", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                     "dataPoints": [{"asInt": "5", "timeUnixNano": "2"}]}}]}]}]}).encode())
    assert metrics
