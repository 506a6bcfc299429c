"""OTLP/HTTP end to end: the real OpenTelemetry HTTP exporters and hand-built protobuf, JSON
and gzip bodies -> agenttop's HTTP receiver -> SQLite, every error status, and the health
checks on both ports."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import NamedTuple

import grpc
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from agenttop.config import ServeSettings
from agenttop.otlp import audit
from agenttop.otlp.decode import TooLarge, decode, gunzip
from agenttop.serve import TLSError, http_ssl_context
from agenttop.store.status import read_status
from tests.conftest import read_db
from tests.test_bad_input import span, traces_request
from tests.test_process import free_port, run_cli
from tests.test_security import TOKEN, sdk_export, span_names, tls_files  # noqa: F401

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
RESOURCE = Resource.create({"service.name": "http-agent"})


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def error_message(self) -> str:
        """The google.rpc.Status message of an error, in whichever encoding it came."""
        if self.headers["Content-Type"] == "application/json":
            return json.loads(self.body)["message"]
        assert self.headers["Content-Type"] == "application/x-protobuf"
        return status_pb2.Status.FromString(self.body).message


def send(service, path: str, body: bytes = b"", headers: dict | None = None,
         method: str = "POST") -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def url(service, signal: str) -> str:
    return f"http://127.0.0.1:{service.http_port}/v1/{signal}"


@pytest.fixture
def server(make_server):
    return make_server(http="127.0.0.1:0")


def json_traces(*spans: dict) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "json-agent"}}]},
        "scopeSpans": [{"scope": {"name": "hand-built"}, "spans": list(spans)}],
    }]}


def json_span(n: int, **fields) -> dict:
    values = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": f"eee19b7ec3c1b1{n:02x}",
        "name": f"json-span-{n}",
        "kind": 3,  # CLIENT, as an integer
        "startTimeUnixNano": "1700000000000000000",  # int64 as a string
        "endTimeUnixNano": "1700000000250000000",
        "status": {"code": 2, "message": "failed"},
    }
    values.update(fields)
    return values


def stored_span(db_path, name: str):
    return read_db(db_path).execute("SELECT * FROM spans WHERE name = ?", (name,)).fetchone()


# --- the real SDK exporters ------------------------------------------------------------------


def test_sdk_http_exporters_store_traces_metrics_and_logs(server, db_path):
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=url(server, "traces"))))
    log_provider = LoggerProvider(resource=RESOURCE)
    log_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=url(server, "logs"))))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url(server, "metrics")),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])

    with tracer_provider.get_tracer("agent").start_as_current_span("chat gpt-4o") as chat:
        chat.set_attribute("gen_ai.request.model", "gpt-4o")
        log_provider.get_logger("agent").emit(body="model answered",
                                              severity_number=SeverityNumber.INFO)
    meter_provider.get_meter("agent").create_counter("requests_total").add(7, {"route": "chat"})
    tracer_provider.shutdown()
    log_provider.shutdown()
    meter_provider.shutdown()

    # Each export returned only after its rows were committed: all of them are readable now.
    conn = read_db(db_path)
    row = stored_span(db_path, "chat gpt-4o")
    ctx = chat.get_span_context()
    assert row["trace_id"] == format(ctx.trace_id, "032x")
    assert row["service"] == "http-agent" and row["layer"] == "prompt"
    log = conn.execute("SELECT * FROM logs").fetchone()
    assert log["body"] == "model answered" and log["span_id"] == format(ctx.span_id, "016x")
    point = conn.execute("SELECT * FROM metric_points").fetchone()
    assert point["name"] == "requests_total" and point["value"] == 7
    assert server.http.responses[200] == 3


def test_sdk_http_exporter_with_gzip(server, db_path):
    exporter = OTLPSpanExporter(endpoint=url(server, "traces"), compression=Compression.Gzip)
    assert sdk_export(exporter, "gzipped") == SpanExportResult.SUCCESS
    assert span_names(db_path) == {"gzipped"}


# --- hand-built bodies --------------------------------------------------------------------


def test_json_with_hex_ids_integer_enums_string_int64s_and_unknown_fields(server, db_path):
    document = json_traces(json_span(1, attributes=[
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9007199254740993"}},
        {"key": "note", "value": {"stringValue": "hi"}, "somethingNew": True},
    ], futureField={"x": 1}))
    document["unknownTopLevel"] = [1, 2]
    reply = send(server, "/v1/traces", json.dumps(document).encode(), JSON)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body) == {}
    row = stored_span(db_path, "json-span-1")
    assert row["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert row["span_id"] == "eee19b7ec3c1b101"
    assert row["kind"] == 3 and row["status_code"] == 2 and row["status_message"] == "failed"
    assert row["start_ns"] == 1_700_000_000_000_000_000
    assert row["duration_ns"] == 250_000_000
    assert row["service"] == "json-agent"
    assert json.loads(row["attributes"]) == {"gen_ai.usage.input_tokens": 9007199254740993,
                                             "note": "hi"}


def test_gzip_json_with_partial_success(server, db_path):
    document = json_traces(json_span(1), json_span(2, spanId="0102"))  # 2-byte span id
    body = gzip.compress(json.dumps(document).encode())
    reply = send(server, "/v1/traces", body, {**JSON, "Content-Encoding": "gzip"})
    assert reply.status == 200
    partial = json.loads(reply.body)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1  # an int64: a string in OTLP/JSON
    assert "span_id" in partial["errorMessage"]
    assert span_names(db_path) == {"json-span-1"}


def test_protobuf_with_partial_success(server, db_path):
    body = traces_request(span(1), span(2, trace_id=b"\x01\x02\x03"))
    reply = send(server, "/v1/traces", body, PROTOBUF)
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(reply.body)
    assert response.partial_success.rejected_spans == 1
    assert span_names(db_path) == {"span-1"}


def test_json_logs_and_metrics(server, db_path):
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1700000000000000000", "severityNumber": 17,
        "body": {"stringValue": "disk full"}, "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b101"}]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "queue_depth", "gauge": {"dataPoints": [{
            "timeUnixNano": "1700000000000000000", "asInt": "42"}]}}]}]}]}
    assert send(server, "/v1/logs", json.dumps(logs).encode(), JSON).status == 200
    assert send(server, "/v1/metrics", json.dumps(metrics).encode(), JSON).status == 200
    conn = read_db(db_path)
    log = conn.execute("SELECT * FROM logs").fetchone()
    assert (log["body"], log["severity_number"], log["span_id"]) == (
        "disk full", 17, "eee19b7ec3c1b101")
    point = conn.execute("SELECT * FROM metric_points").fetchone()
    assert (point["name"], point["value"]) == ("queue_depth", 42)


# --- errors ----------------------------------------------------------------------------------


def well_formed_is_served(service, db_path, n: int = 99) -> None:
    assert send(service, "/v1/traces", traces_request(span(n)), PROTOBUF).status == 200
    assert f"span-{n}" in span_names(db_path)


@pytest.mark.parametrize("headers, body, expected", [
    (PROTOBUF, b"\xff\xff\xff garbage", "cannot decode OTLP traces"),
    (JSON, b'{"resourceSpans": [', "not valid JSON"),
    (JSON, b"[1, 2]", "must be a JSON object"),
    (JSON, json.dumps(json_traces(json_span(1, traceId="zz"))).encode(), "not a hex string"),
    ({**JSON, "Content-Encoding": "gzip"}, b"not gzip at all", "not a valid gzip body"),
    ({**PROTOBUF, "Content-Encoding": "gzip"}, gzip.compress(traces_request(span(1)))[:-12],
     "cut short"),
], ids=["protobuf", "json-syntax", "json-array", "json-bad-id", "not-gzip", "cut-gzip"])
def test_bad_bodies_are_400_in_the_request_encoding(server, db_path, headers, body, expected):
    reply = send(server, "/v1/traces", body, headers)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == headers["Content-Type"]
    assert expected in reply.error_message()
    assert server.receiver.malformed == 1
    assert span_names(db_path) == set()
    well_formed_is_served(server, db_path)


def test_gunzip_reads_every_member_and_stops_at_the_limit():
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert gunzip(body, 12) == b"first second"
    with pytest.raises(TooLarge):
        gunzip(body, 11)


def test_over_the_size_limit_is_413_compressed_or_not(make_server, db_path):
    service = make_server(http="127.0.0.1:0", max_message_mb=1)
    big = traces_request(span(1, name="x" * (1024 * 1024 + 10)))
    reply = send(service, "/v1/traces", big, PROTOBUF)
    assert reply.status == 413 and "larger than 1,048,576 bytes" in reply.error_message()
    # Small on the wire, too large once inflated: refused without inflating all of it.
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    reply = send(service, "/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert reply.status == 413 and "inflates to more than" in reply.error_message()
    assert service.receiver.too_large == 2  # and both are in the audit trail
    well_formed_is_served(service, db_path)


def test_other_content_types_and_encodings_are_415(server, db_path):
    reply = send(server, "/v1/traces", b"hello", {"Content-Type": "text/plain"})
    assert reply.status == 415 and "application/x-protobuf" in reply.error_message()
    reply = send(server, "/v1/traces", b"", {**JSON, "Content-Encoding": "br"})
    assert reply.status == 415 and reply.headers["Content-Type"] == "application/json"
    assert "Content-Encoding br" in reply.error_message()
    well_formed_is_served(server, db_path)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(server, method):
    reply = send(server, "/v1/logs", b"", PROTOBUF, method=method)
    assert reply.status == 405 and reply.headers["Allow"] == "POST"
    assert "POST only" in reply.error_message()


def test_full_queue_is_503_with_retry_after(make_server, db_path):
    service = make_server(http="127.0.0.1:0", queue_spans=1)
    release = threading.Event()
    blocker = decode("traces", traces_request(span(1)), 0)
    assert service.writer.try_submit(blocker, lambda error: release.wait(30))

    reply = send(service, "/v1/traces", json.dumps(json_traces(json_span(2))).encode(), JSON)
    assert reply.status == 503
    assert 1 <= int(reply.headers["Retry-After"]) <= 5
    assert "busy" in reply.error_message()

    release.set()
    service.writer.call(lambda conn: None).result(30)  # queued behind the blocker's commit
    well_formed_is_served(service, db_path)
    assert span_names(db_path) == {"span-1", "span-99"}


def test_retrying_http_exporters_lose_nothing_in_a_burst(make_server, db_path):
    service = make_server(http="127.0.0.1:0", queue_spans=2)
    sent: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{n}"}))
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=url(service, "traces"), timeout=60)))
        for i in range(4):
            with provider.get_tracer("burst").start_as_current_span(f"c{n}-{i}") as s:
                pass
            with lock:
                sent.append(s.get_span_context().span_id)
        provider.shutdown()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert service.http.responses[503] > 0, "the burst never filled the queue"
    stored = [int(r[0], 16) for r in read_db(db_path).execute("SELECT span_id FROM spans")]
    assert sorted(stored) == sorted(sent) and len(stored) == 24


# --- token, TLS, audit ---------------------------------------------------------------------


@pytest.fixture
def no_ca_bundle_override(monkeypatch):
    """requests lets these variables win over the exporter's ``certificate_file``."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def test_token_is_required_and_refusals_are_audited(make_server, db_path):
    service = make_server(http="127.0.0.1:0", token=TOKEN)
    body = traces_request(span(1))
    missing = send(service, "/v1/traces", body, PROTOBUF)
    wrong = send(service, "/v1/traces", body, {**PROTOBUF, "Authorization": "Bearer nope"})
    for reply in (missing, wrong):
        assert reply.status == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
        assert "Bearer <token>" in reply.error_message() and TOKEN.encode() not in reply.body
    # Refused before the body is looked at: even a wrong content type gets 401.
    assert send(service, "/v1/traces", b"x", {"Content-Type": "text/plain"}).status == 401
    good = send(service, "/v1/traces", body, {**PROTOBUF, "Authorization": f"Bearer {TOKEN}"})
    assert good.status == 200
    exporter = OTLPSpanExporter(endpoint=url(service, "traces"),
                                headers={"authorization": f"Bearer {TOKEN}"})
    assert sdk_export(exporter, "sdk-with-token") == SpanExportResult.SUCCESS
    assert span_names(db_path) == {"span-1", "sdk-with-token"}
    assert service.receiver.unauthenticated == 3

    deadline = time.monotonic() + 10  # the audit log is written about once a second
    rows: list = []
    while time.monotonic() < deadline and sum(r["count"] for r in rows) < 3:
        time.sleep(0.1)
        rows = list(read_db(db_path).execute("SELECT * FROM audit"))
    by_reason = {r["reason"]: r["count"] for r in rows}
    assert by_reason == {audit.MISSING_TOKEN: 2, audit.WRONG_TOKEN: 1}
    assert {(r["peer"], r["signal"]) for r in rows} == {("ipv4:127.0.0.1", "traces")}


@pytest.mark.usefixtures("no_ca_bundle_override")
def test_https_with_the_token_and_the_sdk_exporter(make_server, db_path, tls_files):  # noqa: F811
    service = make_server(http="127.0.0.1:0", token=TOKEN, tls_cert=tls_files["cert"],
                          tls_key=tls_files["key"])
    exporter = OTLPSpanExporter(endpoint=f"https://127.0.0.1:{service.http_port}/v1/traces",
                                certificate_file=str(tls_files["ca"]),
                                headers={"authorization": f"Bearer {TOKEN}"})
    assert sdk_export(exporter, "over-https") == SpanExportResult.SUCCESS
    # No plaintext HTTP on a TLS receiver.
    with pytest.raises((http.client.HTTPException, OSError)):
        send(service, "/v1/traces", traces_request(span(1)),
             {**PROTOBUF, "Authorization": f"Bearer {TOKEN}"})
    assert span_names(db_path) == {"over-https"}


@pytest.mark.usefixtures("no_ca_bundle_override")
def test_mutual_tls_over_https(make_server, db_path, tls_files):  # noqa: F811
    service = make_server(http="127.0.0.1:0", tls_cert=tls_files["cert"],
                          tls_key=tls_files["key"], tls_client_ca=tls_files["ca"])
    endpoint = f"https://127.0.0.1:{service.http_port}/v1/traces"
    anonymous = OTLPSpanExporter(endpoint=endpoint, certificate_file=str(tls_files["ca"]),
                                 timeout=2)
    assert sdk_export(anonymous, "no-client-cert") == SpanExportResult.FAILURE
    with_cert = OTLPSpanExporter(endpoint=endpoint, certificate_file=str(tls_files["ca"]),
                                 client_certificate_file=str(tls_files["client_cert"]),
                                 client_key_file=str(tls_files["client_key"]))
    assert sdk_export(with_cert, "client-cert") == SpanExportResult.SUCCESS
    assert span_names(db_path) == {"client-cert"}


# --- health checks -------------------------------------------------------------------------


def grpc_health(service, name: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status


def test_health_checks_on_both_ports_need_no_token(make_server):
    service = make_server(http="127.0.0.1:0", token=TOKEN)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert grpc_health(service) == serving
    assert grpc_health(service, "opentelemetry.proto.collector.trace.v1.TraceService") == serving
    for path, expected in (("/healthz", {"status": "up"}), ("/readyz", {"status": "ready"})):
        reply = send(service, path, method="GET")
        assert reply.status == 200 and json.loads(reply.body) == expected

    service.writer.close()  # the database is closed under the receiver: no longer ready
    reply = send(service, "/readyz", method="GET")
    assert reply.status == 503
    assert json.loads(reply.body) == {"status": "not ready",
                                      "reason": "the database writer is not running"}
    assert send(service, "/healthz", method="GET").status == 200  # the process is still up
    deadline = time.monotonic() + 10  # gRPC health follows at the next heartbeat
    while (status := grpc_health(service)) == serving and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_http_part_reports_in_the_status_row(server, db_path):
    send(server, "/v1/traces", traces_request(span(1)), PROTOBUF)
    send(server, "/v1/traces", b"", {"Content-Type": "text/plain"})
    deadline = time.monotonic() + 10  # rewritten every 2 s
    status: dict = {}
    while time.monotonic() < deadline and status.get("responses") != {"200": 1, "415": 1}:
        time.sleep(0.1)
        status = read_status(read_db(db_path)).status.get("http", {})
    assert status == {"address": server.http_address, "responses": {"200": 1, "415": 1}}


# --- the command line --------------------------------------------------------------------


def test_serve_listens_on_http_and_says_so(tmp_path):
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(tmp_path / "a.db"),
         "--grpc", f"127.0.0.1:{grpc_port}", "--http", f"localhost:{http_port}",
         "--decoders", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "serve never listened"
            try:
                with socket.create_connection(("127.0.0.1", http_port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        conn.request("POST", "/v1/traces", traces_request(span(1)), PROTOBUF)
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"agenttop serve: OTLP/gRPC on 127.0.0.1:{grpc_port} (no token)" in err
    assert f"agenttop serve: OTLP/HTTP on localhost:{http_port} (no token)" in err
    assert "Traceback" not in err


def test_busy_http_port_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--db", str(tmp_path / "a.db"), "--grpc", "127.0.0.1:0",
                         "--http", f"127.0.0.1:{port}", "--decoders", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"agenttop: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_http_address_is_checked_like_the_grpc_one(tmp_path):
    exposed = run_cli("serve", "--db", str(tmp_path / "a.db"), "--http", "0.0.0.0:0")
    assert exposed.returncode == 2
    assert exposed.stderr.strip() == (
        "agenttop: error: refusing to listen on 0.0.0.0:0 without --token: anyone who can "
        "reach it could write to your database; pass --token, or --insecure to do it anyway")
    bad = run_cli("serve", "--db", str(tmp_path / "a.db"), "--http", "nowhere")
    assert bad.returncode == 2 and "--http" in bad.stderr and "HOST:PORT" in bad.stderr
    assert not (tmp_path / "a.db").exists()



def test_a_key_that_does_not_match_its_certificate_is_one_clear_error(tls_files):  # noqa: F811
    settings = ServeSettings(tls_cert=tls_files["cert"], tls_key=tls_files["client_key"])
    with pytest.raises(TLSError) as info:
        http_ssl_context(settings)
    message = str(info.value)
    assert message.startswith(f"--tls-cert {tls_files['cert']}, --tls-key ")
    assert "cannot serve HTTPS with them" in message and "\n" not in message


def test_unparsable_requests_are_one_rate_limited_line_and_audited(make_server, db_path,
                                                                     caplog):
    import logging
    import socket

    caplog.set_level(logging.DEBUG)
    service = make_server(http="127.0.0.1:0")
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", service.http_port)) as s:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n"
                      b"Content-Length: 0\r\n\r\n")
            assert s.recv(200).startswith(b"HTTP/1.0 400")
    said = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is None
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("aiohttp"))
    assert service.receiver.malformed == 50
    deadline = time.monotonic() + 10
    while True:
        rows = read_db(db_path).execute(
            "SELECT signal, reason, sum(count) FROM audit GROUP BY 1, 2").fetchall()
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [tuple(r) for r in rows] == [("http", "malformed request", 50)]


def test_a_request_head_trickled_byte_by_byte_is_cut_off(make_server, monkeypatch):
    import socket

    monkeypatch.setattr("agenttop.otlp.http_server.HEAD_TIMEOUT_S", 1.0)
    service = make_server(http="127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", service.http_port)) as slow:
        slow.settimeout(10)
        started = time.monotonic()
        closed = False
        for byte in b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                slow.sendall(bytes([byte]))
                time.sleep(0.1)
            except OSError:
                closed = True
                break
            if time.monotonic() - started > 5:
                break
        if not closed:
            slow.setblocking(True)
            closed = slow.recv(100) == b""
    assert closed and time.monotonic() - started < 5
    # A client that sends its request at once is served as before.
    with socket.create_connection(("127.0.0.1", service.http_port)) as good:
        good.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert good.recv(100).startswith(b"HTTP/1.1 200")
