"""Forwarding (``serve --forward URL``): agenttop A sends everything it receives on to an
upstream, here agenttop B, and keeps ingesting whatever the upstream does."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import sys
import time
import urllib.request

import psutil
import pytest
from aiohttp import web
from click.testing import CliRunner
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agenttop.cli import main
from agenttop.config import ForwardTarget, ServeSettings, parse_forward_url, parse_header
from agenttop.otlp.forward import Forwarder, retry_after_delay, retry_info_delay
from agenttop.otlp.grpc_server import retry_status
from agenttop.otlp.otlp_json import to_json
from agenttop.serve import BackgroundService
from agenttop.store.status import read_status
from tests.conftest import read_db, serve_settings
from tests.test_bad_input import span, traces_request
from tests.test_process import free_port
from tests.test_run_e2e import Terminal

RESOURCE = Resource.create({"service.name": "support-agent"})
WAIT_S = 60  # an upper bound for catching up, never a timing under test

SPANS = ("SELECT trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, "
         "status_code, status_message, layer, failure, attributes, events FROM spans "
         "ORDER BY trace_id, span_id")
POINTS = ("SELECT name, type, time_ns, value, attributes, service FROM metric_points "
          "ORDER BY name, time_ns")
LOGS = ("SELECT time_ns, severity_number, body, trace_id, span_id, event_name, attributes "
        "FROM logs ORDER BY time_ns, body")
FINDINGS = ("SELECT kind, pattern, trace_id, span_id, location, excerpt FROM findings "
            "ORDER BY 1, 2, 3, 4, 5")


def rows(db, sql: str = SPANS) -> list[tuple]:
    conn = read_db(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def send_spans(port: int, names: list[str], *, fail: bool = False) -> None:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
    tracer = provider.get_tracer("agent")
    for name in names:
        with tracer.start_as_current_span(name) as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            with tracer.start_as_current_span(f"{name}/tool") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.call.arguments", "call me on 555-867-5309")
                if fail:
                    tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
    provider.shutdown()


def send_metrics_and_logs(port: int) -> None:
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"127.0.0.1:{port}", insecure=True),
        export_interval_millis=3_600_000)
    meters = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = meters.get_meter("agent")
    meter.create_counter("requests_total").add(3, {"route": "chat"})
    meter.create_gauge("output_quality_score").set(0.93)
    meters.shutdown()
    logs = LoggerProvider(resource=RESOURCE)
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
    logs.get_logger("agent").emit(body="tool lookup_order failed at step 3",
                                  severity_number=SeverityNumber.ERROR)
    logs.shutdown()


# --- A -> B, end to end ----------------------------------------------------------------------


def test_b_holds_exactly_what_a_received(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db")
    a = make_server(db=tmp_path / "a.db", forward=f"grpc://127.0.0.1:{b.grpc_port}")
    send_spans(a.grpc_port, [f"run-{i}" for i in range(5)], fail=True)
    send_metrics_and_logs(a.grpc_port)

    def caught_up() -> bool:
        return all(rows(tmp_path / "b.db", sql) == rows(tmp_path / "a.db", sql)
                   for sql in (SPANS, POINTS, LOGS, FINDINGS))

    # B stores a request before A hears B's answer: A's queue empties just after.
    wait_for(lambda: caught_up() and a.forwarder.status()["queued"] == 0,
         "B to hold what A holds")
    assert len(rows(tmp_path / "a.db")) == 10
    assert len(rows(tmp_path / "a.db", POINTS)) == 2 and len(rows(tmp_path / "a.db", LOGS)) == 1
    # Both stored the phone number redacted, and both found it.
    assert all("555-867-5309" not in r[12] for r in rows(tmp_path / "b.db"))
    assert len(rows(tmp_path / "b.db", FINDINGS)) == 5
    status = a.forwarder.status()
    assert status["url"] == f"grpc://127.0.0.1:{b.grpc_port}"
    assert status["state"] == "ok" and status["queued"] == 0
    assert status["sent"] == 10 + 1 + 1  # one request a span (SimpleSpanProcessor), 1, 1
    assert status["failed"] == status["dropped"] == 0 and status["last_error"] is None


def test_upstream_down_then_back_catches_up(make_server, tmp_path):
    port = free_port()
    b_settings = serve_settings(tmp_path / "b.db", grpc=f"127.0.0.1:{port}")
    a = make_server(db=tmp_path / "a.db", forward=f"grpc://127.0.0.1:{port}")
    with BackgroundService(b_settings):
        send_spans(a.grpc_port, ["before-1", "before-2"])
        wait_for(lambda: len(rows(tmp_path / "b.db")) == 4, "the first spans at B")

    # B is down: A still takes everything, at once, and keeps it for B.
    send_spans(a.grpc_port, [f"during-{i}" for i in range(10)])
    assert len(rows(tmp_path / "a.db")) == 24
    wait_for(lambda: a.forwarder.failing, "A to notice that B is down")
    assert "UNAVAILABLE" in a.forwarder.last_error
    assert a.forwarder.status()["state"] == "retrying" and a.forwarder.status()["queued"] > 0

    with BackgroundService(b_settings):  # same port, same file
        wait_for(lambda: rows(tmp_path / "b.db") == rows(tmp_path / "a.db"), "B to catch up")
        wait_for(lambda: not a.forwarder.failing, "A to see B back")
    status = a.forwarder.status()
    assert status["sent"] == 24 and status["failed"] == status["dropped"] == 0
    assert status["state"] == "ok" and status["queued"] == 0
    assert "UNAVAILABLE" in status["last_error"]  # kept for the UI, with its time
    assert status["last_error_ns"] is not None


def test_refusal_counts_as_failed_and_headers_authenticate(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db", token="upstream-token")
    upstream = f"grpc://127.0.0.1:{b.grpc_port}"
    anonymous = make_server(db=tmp_path / "a1.db", forward=upstream)
    send_spans(anonymous.grpc_port, ["no-token"])
    wait_for(lambda: anonymous.forwarder.failed == 2, "B's refusals")
    assert anonymous.forwarder.sent == 0 and not anonymous.forwarder.failing
    assert anonymous.forwarder.last_error.startswith("UNAUTHENTICATED")
    assert rows(tmp_path / "b.db") == []

    with_header = make_server(db=tmp_path / "a2.db", forward=upstream,
                              forward_header=("Authorization: Bearer upstream-token",))
    send_spans(with_header.grpc_port, ["with-token"])
    wait_for(lambda: len(rows(tmp_path / "b.db")) == 2, "the spans at B")
    assert with_header.forwarder.status()["failed"] == 0


def test_status_row_reports_forwarding(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db")
    background = BackgroundService(serve_settings(
        tmp_path / "a.db", forward=f"grpc://127.0.0.1:{b.grpc_port}"))
    with background as a:
        send_spans(a.grpc_port, ["one"])
        wait_for(lambda: a.forwarder.sent == 2, "the spans at B")
    forward = read_status(read_db(tmp_path / "a.db")).status["forward"]
    assert forward == {"url": f"grpc://127.0.0.1:{b.grpc_port}", "state": "ok", "queued": 0,
                       "queued_bytes": 0, "sent": 2, "failed": 0, "dropped": 0,
                       "last_error": None, "last_error_ns": None}


def test_json_and_gzip_bodies_are_forwarded_as_protobuf(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db")
    a = make_server(db=tmp_path / "a.db", http="127.0.0.1:0",
                    forward=f"grpc://127.0.0.1:{b.grpc_port}")
    document = to_json(ExportTraceServiceRequest.FromString(traces_request(span(1), span(2))))
    body = json.dumps(document).encode()
    for data, headers in ((body, {}), (gzip.compress(traces_request(span(3))),
                                       {"Content-Encoding": "gzip"})):
        content_type = "application/json" if data is body else "application/x-protobuf"
        request = urllib.request.Request(f"http://127.0.0.1:{a.http_port}/v1/traces", data=data,
                                         headers={"Content-Type": content_type, **headers})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    wait_for(lambda: len(rows(tmp_path / "b.db")) == 3, "the spans at B")
    assert rows(tmp_path / "b.db") == rows(tmp_path / "a.db")


def test_over_otlp_http_to_b(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db", http="127.0.0.1:0", token="upstream-token")
    a = make_server(db=tmp_path / "a.db", forward=f"http://127.0.0.1:{b.http_port}",
                    forward_header=("authorization: Bearer upstream-token",))
    send_spans(a.grpc_port, ["over-http"])
    send_metrics_and_logs(a.grpc_port)
    wait_for(lambda: all(rows(tmp_path / "b.db", sql) == rows(tmp_path / "a.db", sql)
                         for sql in (SPANS, POINTS, LOGS)), "B to hold what A holds")
    # B commits before it answers, so A counts the last request sent a moment later.
    wait_for(lambda: a.forwarder.status()["sent"] == 4, "A to count four requests sent")
    assert a.forwarder.status()["failed"] == 0


# --- the queue and the sender, against upstreams that misbehave ------------------------------


def test_full_queue_drops_the_oldest(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db")
    bodies = [traces_request(span(n)) for n in (1, 2, 3)]

    async def scenario() -> dict:
        forwarder = Forwarder(parse_forward_url(f"grpc://127.0.0.1:{b.grpc_port}"),
                              max_queue_bytes=len(bodies[0]) * 2)
        for body in bodies:
            forwarder.submit("traces", body)  # the sender is not running yet
        assert forwarder.dropped == 1 and forwarder.status()["queued"] == 2
        forwarder.start()
        assert await forwarder.flush(WAIT_S)
        await forwarder.close()
        return forwarder.status()

    status = asyncio.run(scenario())
    assert status["sent"] == 2 and status["dropped"] == 1
    assert [r[3] for r in rows(tmp_path / "b.db")] == ["span-2", "span-3"]


class ScriptedUpstream:
    """A real OTLP/HTTP endpoint whose answers are scripted: to see retries and refusals."""

    def __init__(self, answers: dict[str, list[web.Response]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, dict, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers), await request.read()))
        script = self.answers[request.path]
        return script.pop(0) if len(script) > 1 else script[0]

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]


def test_http_retries_after_503_and_gives_up_on_400():
    upstream = ScriptedUpstream({
        "/otlp/v1/traces": [web.Response(status=503, headers={"Retry-After": "0"}),
                            web.Response(status=200)],
        "/otlp/v1/logs": [web.Response(status=400, text="bad logs")],
    })
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "x"
    traces = traces_request(span(1))

    async def scenario() -> Forwarder:
        runner, port = await upstream.start()
        forwarder = Forwarder(parse_forward_url(f"http://127.0.0.1:{port}/otlp/"),
                              (("x-api-key", "k3y"),), max_queue_bytes=1 << 20)
        forwarder.start()
        forwarder.submit("traces", traces)
        forwarder.submit("logs", logs.SerializeToString())
        assert await forwarder.flush(WAIT_S)
        await forwarder.close()
        await runner.cleanup()
        return forwarder

    forwarder = asyncio.run(scenario())
    assert [path for path, _, _ in upstream.seen] == [
        "/otlp/v1/traces", "/otlp/v1/traces", "/otlp/v1/logs"]
    path, headers, body = upstream.seen[1]
    assert body == traces
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["x-api-key"] == "k3y" and headers["User-Agent"].startswith("agenttop/")
    assert forwarder.sent == 1 and forwarder.failed == 1 and not forwarder.failing
    assert forwarder.last_error == "HTTP 400 Bad Request"


def test_bodies_of_one_signal_are_joined_into_one_request():
    upstream = ScriptedUpstream({"/v1/traces": [web.Response(status=200)]})
    bodies = [traces_request(span(n)) for n in range(1, 6)]

    async def scenario() -> None:
        runner, port = await upstream.start()
        forwarder = Forwarder(parse_forward_url(f"http://127.0.0.1:{port}"),
                              max_queue_bytes=1 << 20)
        for body in bodies:
            forwarder.submit("traces", body)
        forwarder.start()
        assert await forwarder.flush(WAIT_S)
        assert forwarder.sent == 5
        await forwarder.close()
        await runner.cleanup()

    asyncio.run(scenario())
    assert len(upstream.seen) == 1
    joined = ExportTraceServiceRequest.FromString(upstream.seen[0][2])
    assert [s.name for rs in joined.resource_spans for ss in rs.scope_spans
            for s in ss.spans] == [f"span-{n}" for n in range(1, 6)]


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "target"), [
    ("grpc://collector:4317", ForwardTarget("grpc", "collector", 4317)),
    ("grpc://collector", ForwardTarget("grpc", "collector", 4317)),
    ("grpcs://api.example.com", ForwardTarget("grpcs", "api.example.com", 443)),
    ("http://127.0.0.1:4318", ForwardTarget("http", "127.0.0.1", 4318)),
    ("https://otlp.example.com/api/otlp/", ForwardTarget("https", "otlp.example.com", 443,
                                                          "/api/otlp")),
    ("GRPC://[::1]:4317", ForwardTarget("grpc", "::1", 4317)),
])
def test_forward_urls(url, target):
    assert parse_forward_url(url) == target


def test_ipv6_url_is_shown_with_brackets():
    assert parse_forward_url("grpc://[::1]:4317").url == "grpc://[::1]:4317"


@pytest.mark.parametrize(("url", "message"), [
    ("collector:4317", "is not one of grpc://HOST:PORT"),
    ("ftp://collector", "is not one of grpc://HOST:PORT"),
    ("grpc://collector:99999", "is not a valid URL"),
    ("grpc://collector:4317/v1", "an OTLP/gRPC URL has no path"),
    ("http://collector:4318/?x=1", "a query or fragment is not supported"),
    ("https://user:hunter2@collector", "must not hold credentials"),
])
def test_bad_forward_urls(url, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_forward_url(url)
    assert "hunter2" not in str(info.value)


def test_headers():
    assert parse_header("Authorization: Bearer a:b") == ("authorization", "Bearer a:b")
    for text, message in (("Bearer hunter2", "'NAME: VALUE'"),
                          ("bad name: hunter2", "characters a header name cannot have"),
                          ("content-type: hunter2", "set by agenttop itself"),
                          ("x-key: hunter2\x1b[2J", "printable ASCII")):
        with pytest.raises(ValueError, match=message) as info:
            parse_header(text)
        assert "hunter2" not in str(info.value)


def test_cli_rejects_bad_forward_options_in_one_line(tmp_path):
    runner = CliRunner()
    for args, message in ((["--forward", "tcp://x:1"], "Error: --forward: 'tcp://x:1' is not"),
                          (["--forward-header", "x-key hunter2"],
                           "Error: --forward-header: a header must be given as 'NAME: VALUE'")):
        result = runner.invoke(main, ["serve", "--db", str(tmp_path / "a.db"), *args])
        assert result.exit_code == 2
        assert message in result.output and "hunter2" not in result.output
    assert not (tmp_path / "a.db").exists()


def test_settings_never_show_header_values():
    settings = ServeSettings(forward="grpc://x:1", forward_header=("x-key: hunter2",))
    assert "hunter2" not in repr(settings)
    assert settings.forward_headers == (("x-key", "hunter2"),)


def test_retry_delays_from_upstream_answers():
    status = retry_status("busy", 1.5)
    assert retry_info_delay(status.trailing_metadata) == 1.5
    # Only the standard status detail, as the Collector and other servers send it.
    standard = [(k, v) for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    assert retry_info_delay(standard) == 1.5
    assert retry_info_delay([]) is None
    assert retry_after_delay("7") == 7.0
    assert retry_after_delay("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
    assert retry_after_delay("soon") is None and retry_after_delay(None) is None


# --- through `agenttop run` ---------------------------------------------------------------


@pytest.mark.timeout(180)
def test_run_passes_forwarding_and_prometheus_to_its_receiver(make_server, tmp_path):
    b = make_server(db=tmp_path / "b.db", token="upstream-token")
    port, metrics = free_port(), free_port()
    term = Terminal([sys.executable, "-m", "agenttop.cli", "run", "--db", str(tmp_path / "a.db"),
                     "--grpc", f"127.0.0.1:{port}", "--http", "off",
                     "--forward", f"grpc://127.0.0.1:{b.grpc_port}",
                     "--forward-header", "authorization: Bearer upstream-token",
                     "--prometheus", f"127.0.0.1:{metrics}"])
    try:
        term.wait_for("PROMPT", timeout=60)
        receiver = psutil.Process(term.proc.pid).children()[0]
        assert "upstream-token" not in " ".join(receiver.cmdline())
        send_spans(port, ["through-run"])

        def at_b() -> bool:
            term.read(0.1)  # keep draining the terminal, or the UI blocks on its writes
            return len(rows(tmp_path / "b.db")) == 2

        wait_for(at_b, "the spans at B")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=30) as r:
            assert 'agenttop_forward_requests_total{outcome="sent"} 2.0' in r.read().decode()
        term.send("q")
        term.wait_exit(60)
    finally:
        if term.proc.poll() is None:
            os.killpg(term.proc.pid, signal.SIGKILL)
        os.close(term.master)
    assert term.proc.returncode == 0
    log = (tmp_path / "a.db.log").read_text()
    assert f"forwarding everything received to grpc://127.0.0.1:{b.grpc_port}" in log
    assert f"Prometheus metrics on http://127.0.0.1:{metrics}/metrics" in log
