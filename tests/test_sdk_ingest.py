"""End to end: the real OpenTelemetry SDK exporters -> agenttop's gRPC receiver -> SQLite."""

from __future__ import annotations

import json

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import read_db

RESOURCE = Resource.create({"service.name": "support-agent", "deployment.environment": "test"})


def endpoint(service) -> str:
    return f"127.0.0.1:{service.grpc_port}"


def tracer_provider(service) -> TracerProvider:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint(service), insecure=True))
    )
    return provider


def test_spans_round_trip_every_field(server, db_path):
    provider = tracer_provider(server)
    tracer = provider.get_tracer("agent.support", "1.2.3")
    with tracer.start_as_current_span("invoke_agent support", kind=SpanKind.SERVER) as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.request.temperature": 0.25,
                "gen_ai.response.finish_reasons": ["stop", "length"],
                "cached": True,
            })
            chat.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hello"})
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
            tool.record_exception(TimeoutError("no answer in 30s"))
    provider.shutdown()

    conn = read_db(db_path)
    spans = {r["name"]: r for r in conn.execute("SELECT * FROM spans")}
    assert set(spans) == {"invoke_agent support", "chat gpt-4o", "execute_tool lookup_order"}
    root_ctx = root.get_span_context()
    r = spans["invoke_agent support"]
    assert r["trace_id"] == format(root_ctx.trace_id, "032x")
    assert r["span_id"] == format(root_ctx.span_id, "016x")
    assert r["parent_span_id"] is None
    assert r["kind"] == 2  # SERVER
    assert r["service"] == "support-agent"
    assert r["scope"] == "agent.support@1.2.3"
    assert r["start_ns"] == root.start_time and r["end_ns"] == root.end_time
    assert r["duration_ns"] == root.end_time - root.start_time

    c = spans["chat gpt-4o"]
    assert c["trace_id"] == r["trace_id"]
    assert c["parent_span_id"] == r["span_id"]
    assert c["kind"] == 3  # CLIENT
    attrs = json.loads(c["attributes"])
    assert attrs == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.response.finish_reasons": ["stop", "length"],
        "cached": True,
    }
    events = json.loads(c["events"])
    assert events[0]["name"] == "gen_ai.content.prompt"
    assert events[0]["attributes"] == {"gen_ai.prompt": "hello"}
    assert c["layer"] is not None

    t = spans["execute_tool lookup_order"]
    assert t["status_code"] == 2 and t["status_message"] == "tool timed out"
    exception = json.loads(t["events"])[0]
    assert exception["name"] == "exception"
    assert exception["attributes"]["exception.type"] == "TimeoutError"

    trace = conn.execute("SELECT * FROM traces").fetchone()
    assert trace["trace_id"] == r["trace_id"]
    assert trace["root_name"] == "invoke_agent support"
    assert trace["service"] == "support-agent"
    assert trace["span_count"] == 3
    assert trace["error_count"] == 1
    assert trace["start_ns"] == root.start_time and trace["end_ns"] == root.end_time

    resource = json.loads(conn.execute("SELECT attributes FROM resources").fetchone()[0])
    assert resource["service.name"] == "support-agent"
    assert resource["deployment.environment"] == "test"


def test_metrics_counter_gauge_histogram(server, db_path):
    exporter = OTLPMetricExporter(endpoint=endpoint(server), insecure=True)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=RESOURCE,
        metric_readers=[reader],
        views=[View(instrument_name="token_usage",
                    aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("agent.metrics")
    requests_total = meter.create_counter("requests_total", unit="1")
    latency = meter.create_histogram("request_latency", unit="s")
    quality = meter.create_gauge("output_quality_score")
    in_flight = meter.create_up_down_counter("in_flight")
    tokens = meter.create_histogram("token_usage")
    requests_total.add(3, {"route": "chat"})
    requests_total.add(2, {"route": "chat"})
    for seconds in (0.2, 0.7, 7.5):
        latency.record(seconds)
    quality.set(0.87)
    in_flight.add(4)
    in_flight.add(-1)
    for n in (10, 100, 1000):
        tokens.record(n)
    provider.shutdown()

    conn = read_db(db_path)
    points = {r["name"]: r for r in conn.execute("SELECT * FROM metric_points")}
    total = points["requests_total"]
    assert total["type"] == "sum" and total["value"] == 5
    assert total["monotonic"] == 1 and total["temporality"] == 2  # cumulative
    assert json.loads(total["attributes"]) == {"route": "chat"}
    assert total["service"] == "support-agent" and total["unit"] == "1"

    assert points["in_flight"]["monotonic"] == 0 and points["in_flight"]["value"] == 3

    gauge = points["output_quality_score"]
    assert gauge["type"] == "gauge" and gauge["value"] == 0.87 and gauge["temporality"] is None

    hist = points["request_latency"]
    assert hist["type"] == "histogram" and hist["count"] == 3
    assert abs(hist["sum"] - 8.4) < 1e-9 and hist["min"] == 0.2 and hist["max"] == 7.5
    bounds, counts = json.loads(hist["bounds"]), json.loads(hist["bucket_counts"])
    assert len(counts) == len(bounds) + 1 and sum(counts) == 3

    expo = points["token_usage"]
    assert expo["type"] == "exponential_histogram" and expo["count"] == 3
    assert sum(json.loads(expo["positive_counts"])) == 3 and expo["scale"] is not None


def test_logs_keep_body_ids_and_event_name(server, db_path):
    provider = tracer_provider(server)
    tracer = provider.get_tracer("agent")
    log_provider = LoggerProvider(resource=RESOURCE)
    log_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint(server), insecure=True))
    )
    logger = log_provider.get_logger("agent.logs")
    with tracer.start_as_current_span("chat") as span:
        logger.emit(body="Tool X failed at step 3", severity_number=SeverityNumber.ERROR,
                    severity_text="ERROR", attributes={"step": 3})
        logger.emit(body={"role": "user", "content": "where is my order?"},
                    event_name="gen_ai.client.inference.operation.details",
                    severity_number=SeverityNumber.INFO)
    provider.shutdown()
    log_provider.shutdown()

    conn = read_db(db_path)
    logs = conn.execute("SELECT * FROM logs ORDER BY log_id").fetchall()
    assert len(logs) == 2
    ctx = span.get_span_context()
    plain, event = logs
    assert plain["body"] == "Tool X failed at step 3"
    assert plain["severity_number"] == SeverityNumber.ERROR.value
    assert plain["severity_text"] == "ERROR"
    assert plain["trace_id"] == format(ctx.trace_id, "032x")
    assert plain["span_id"] == format(ctx.span_id, "016x")
    assert json.loads(plain["attributes"]) == {"step": 3}
    assert plain["service"] == "support-agent"
    assert plain["time_ns"] > 0
    assert event["event_name"] == "gen_ai.client.inference.operation.details"
    assert json.loads(event["body"]) == {"role": "user", "content": "where is my order?"}
    # The log links to a span that is stored too.
    assert conn.execute(
        "SELECT name FROM spans WHERE trace_id = ? AND span_id = ?",
        (plain["trace_id"], plain["span_id"]),
    ).fetchone()["name"] == "chat"
