"""Malformed, hostile and odd requests get the right OTLP status, and nothing else is lost."""

from __future__ import annotations

import random

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agenttop.otlp.convert import DEPTH_MARKER, MAX_DEPTH
from tests.conftest import read_db

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def call(service, method: str, body: bytes) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        return channel.unary_unary(method)(body, timeout=30)


def status_of(service, method: str, body: bytes) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(service, method, body)
    return info.value.code()


def span(n: int, trace_id: bytes | None = None, **fields) -> Span:
    values = {
        "trace_id": trace_id or bytes([1]) * 15 + bytes([n]),
        "span_id": bytes([2]) * 7 + bytes([n]),
        "name": f"span-{n}",
        "start_time_unix_nano": 1_700_000_000_000_000_000 + n,
        "end_time_unix_nano": 1_700_000_000_000_000_000 + n + 1000,
    }
    values.update(fields)
    return Span(**values)


def traces_request(*spans: Span) -> bytes:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def well_formed_client_is_served(service, db_path, n: int = 99) -> None:
    response = ExportTraceServiceResponse.FromString(call(service, TRACES, traces_request(span(n))))
    assert not response.HasField("partial_success")
    names = [r[0] for r in read_db(db_path).execute("SELECT name FROM spans")]
    assert f"span-{n}" in names


@pytest.mark.parametrize("method", [TRACES, METRICS, LOGS])
def test_random_bytes_are_invalid_argument(server, db_path, method):
    garbage = bytes([0xFF, 0xFF, 0xFF]) + random.Random(4).randbytes(2000)
    assert status_of(server, method, garbage) == grpc.StatusCode.INVALID_ARGUMENT
    well_formed_client_is_served(server, db_path)


def test_truncated_protobuf_is_invalid_argument(server, db_path):
    body = traces_request(span(1, attributes=[KeyValue(key="k", value=AnyValue(
        string_value="x" * 500))]))
    assert status_of(server, TRACES, body[: len(body) // 2]) == grpc.StatusCode.INVALID_ARGUMENT
    assert read_db(db_path).execute("SELECT count(*) FROM spans").fetchone()[0] == 0
    well_formed_client_is_served(server, db_path)


def test_invalid_utf8_is_invalid_argument(server, db_path):
    body = traces_request(span(1, name="NAME_MARK"))
    body = body.replace(b"NAME_MARK", b"NAME\xff\xfeRK")
    assert status_of(server, TRACES, body) == grpc.StatusCode.INVALID_ARGUMENT
    well_formed_client_is_served(server, db_path)


def test_oversize_message_is_resource_exhausted(make_server, db_path):
    service = make_server(max_message_mb=1)
    big = traces_request(span(1, name="x" * (1024 * 1024 + 10)))
    assert status_of(service, TRACES, big) == grpc.StatusCode.RESOURCE_EXHAUSTED
    well_formed_client_is_served(service, db_path)


def test_empty_requests_succeed_and_store_nothing(server, db_path):
    for method, response_type in [(TRACES, ExportTraceServiceResponse),
                                  (METRICS, ExportMetricsServiceResponse),
                                  (LOGS, ExportLogsServiceResponse)]:
        response = response_type.FromString(call(server, method, b""))
        assert not response.HasField("partial_success")
    conn = read_db(db_path)
    for table in ("spans", "metric_points", "logs"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_bad_span_ids_rejected_individually(server, db_path):
    body = traces_request(
        span(1),
        span(2, trace_id=b"\x01\x02\x03"),  # 3-byte trace id
        span(3, span_id=b"\x09" * 9),  # 9-byte span id
        span(4, trace_id=bytes(16)),  # all-zero trace id is invalid
        span(5, parent_span_id=b"\x01\x02"),  # 2-byte parent id
        span(6, parent_span_id=b"\x03" * 8),
    )
    response = ExportTraceServiceResponse.FromString(call(server, TRACES, body))
    assert response.partial_success.rejected_spans == 4
    message = response.partial_success.error_message
    assert "4 spans rejected" in message and "trace_id must be 16" in message
    names = sorted(r[0] for r in read_db(db_path).execute("SELECT name FROM spans"))
    assert names == ["span-1", "span-6"]


def test_bad_log_ids_and_metric_points_rejected_individually(server, db_path):
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.extend([
        LogRecord(body=AnyValue(string_value="kept")),
        LogRecord(body=AnyValue(string_value="bad trace id"), trace_id=b"\x01" * 5),
        LogRecord(body=AnyValue(string_value="bad span id"), trace_id=b"\x01" * 16,
                  span_id=b"\x02" * 3),
    ])
    response = ExportLogsServiceResponse.FromString(call(server, LOGS, logs.SerializeToString()))
    assert response.partial_success.rejected_log_records == 2

    metrics = ExportMetricsServiceRequest()
    scope = metrics.resource_metrics.add().scope_metrics.add()
    good = Metric(name="latency")
    good.histogram.data_points.add(count=2, explicit_bounds=[1.0], bucket_counts=[1, 1])
    good.histogram.data_points.add(count=2, explicit_bounds=[1.0, 2.0], bucket_counts=[2])
    unnamed = Metric(name="")
    unnamed.gauge.data_points.add(as_double=1.0)
    scope.metrics.extend([good, unnamed])
    response = ExportMetricsServiceResponse.FromString(
        call(server, METRICS, metrics.SerializeToString())
    )
    assert response.partial_success.rejected_data_points == 2
    assert "bucket_counts" in response.partial_success.error_message

    conn = read_db(db_path)
    assert [r[0] for r in conn.execute("SELECT body FROM logs")] == ["kept"]
    assert conn.execute("SELECT count(*) FROM metric_points").fetchone()[0] == 1


def nested_arrays(depth: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        wrapper = AnyValue()
        wrapper.array_value.values.append(value)
        value = wrapper
    return value


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, for messages too deep for the protobuf library."""
    length, size = b"", len(payload)
    while True:
        byte, size = size & 0x7F, size >> 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + payload


def test_deep_nesting_is_capped(server, db_path):
    import json

    deep = KeyValue(key="deep", value=nested_arrays(MAX_DEPTH + 8))
    call(server, TRACES, traces_request(span(1, attributes=[deep])))
    stored = json.loads(read_db(db_path).execute("SELECT attributes FROM spans").fetchone()[0])
    value, levels = stored["deep"], 0
    while isinstance(value, list):
        value, levels = value[0], levels + 1
    assert value == DEPTH_MARKER and levels == MAX_DEPTH


def test_nesting_beyond_protobuf_limit_is_invalid_argument(server, db_path):
    value = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(3000):  # kvlist_value (6) -> values (1) -> KeyValue.value (2)
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    attribute = _field(1, b"deep") + _field(2, value)
    span_bytes = span(1).SerializeToString() + _field(9, attribute)  # Span.attributes = 9
    body = _field(1, _field(2, _field(2, span_bytes)))
    assert status_of(server, TRACES, body) == grpc.StatusCode.INVALID_ARGUMENT
    well_formed_client_is_served(server, db_path)


def test_any_value_kinds_become_json(server, db_path):
    import json

    value = AnyValue()
    value.array_value.values.extend([
        AnyValue(int_value=-7), AnyValue(double_value=1.5), AnyValue(bool_value=False),
        AnyValue(bytes_value=b"\x00\xff"), AnyValue(),
    ])
    kv = AnyValue()
    kv.kvlist_value.values.add(key="inner", value=AnyValue(string_value="v"))
    attrs = [KeyValue(key="arr", value=value), KeyValue(key="map", value=kv),
             KeyValue(key="big", value=AnyValue(int_value=2**63 - 1))]
    call(server, TRACES, traces_request(span(1, attributes=attrs)))
    stored = json.loads(read_db(db_path).execute("SELECT attributes FROM spans").fetchone()[0])
    assert stored == {"arr": [-7, 1.5, False, "AP8=", None], "map": {"inner": "v"},
                      "big": 2**63 - 1}


def test_duplicate_span_is_stored_once(server, db_path):
    body = traces_request(span(1), span(2))
    call(server, TRACES, body)
    call(server, TRACES, body)
    conn = read_db(db_path)
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 2
    assert conn.execute("SELECT sum(span_count) FROM traces").fetchone()[0] == 2


def test_children_before_root_make_a_right_trace(server, db_path):
    tid = b"\x07" * 16
    root = span(1, trace_id=tid, name="root", start_time_unix_nano=10, end_time_unix_nano=100)
    child = span(2, trace_id=tid, name="child", parent_span_id=root.span_id,
                 start_time_unix_nano=20, end_time_unix_nano=50,
                 status={"code": 2, "message": "boom"})
    call(server, TRACES, traces_request(child))
    conn = read_db(db_path)
    before = conn.execute("SELECT * FROM traces").fetchone()
    assert before["root_name"] is None and before["span_count"] == 1
    call(server, TRACES, traces_request(root))
    after = conn.execute("SELECT * FROM traces").fetchone()
    assert after["root_name"] == "root" and after["root_span_id"] == root.span_id.hex()
    assert (after["start_ns"], after["end_ns"], after["span_count"], after["error_count"]) == (
        10, 100, 2, 1)
