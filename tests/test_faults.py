"""The receiver under faults: its file deleted under load, its disk full. Nothing it has
acknowledged may be lost, it must say why in one line, and readiness must tell the truth."""

from __future__ import annotations

import logging
import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from agenttop.otlp.receiver import STORE_FAILED
from agenttop.serve import BackgroundService
from tests.conftest import read_db, serve_settings
from tests.test_bad_input import TRACES, call, span, traces_request
from tests.test_process import free_port, start_serve, wait_listening


class Recorder(SpanProcessor):
    """Exports each span as it ends, once, and records when it started and how it went."""

    def __init__(self, port: int) -> None:
        self.exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True,
                                         timeout=2)
        self.results: list[tuple[float, int, bool]] = []  # (started, span id, acknowledged)

    def on_end(self, span: ReadableSpan) -> None:
        started = time.monotonic()
        ok = self.exporter.export([span]) is SpanExportResult.SUCCESS
        self.results.append((started, span.context.span_id, ok))

    def shutdown(self) -> None:
        self.exporter.shutdown()


def test_a_deleted_database_is_never_acknowledged_into(tmp_path):
    db = tmp_path / "agenttop.db"
    port = free_port()
    proc = start_serve(db, port)
    wait_listening(proc, port)
    recorder = Recorder(port)
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(recorder)
    tracer = provider.get_tracer("load")
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set() and proc.poll() is None:
            with tracer.start_as_current_span("chat gpt-4o"):
                pass

    sender = threading.Thread(target=load)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while sum(ok for *_, ok in recorder.results) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        removed_at = time.monotonic()
        os.remove(db)  # as `rm agenttop.db` would, while serve writes it
        proc.wait(30)
    finally:
        stop.set()
        sender.join(60)
        provider.shutdown()
    stderr = proc.stderr.read()
    assert proc.returncode == 1, stderr
    assert "was deleted or replaced while agenttop wrote it" in stderr
    assert "nothing was acknowledged after that" in stderr
    acked_after = [sid for started, sid, ok in recorder.results if ok and started > removed_at]
    assert acked_after == [], "acknowledged into a file nobody can read"
    assert sum(ok for *_, ok in recorder.results) >= 100


def test_a_renamed_database_is_written_on(db_path):
    moved = db_path.with_name("moved.db")
    with BackgroundService(serve_settings(db_path)) as service:
        call(service, TRACES, traces_request(span(1)))
        os.rename(db_path, moved)
        call(service, TRACES, traces_request(span(2)))  # still the same file: acknowledged
        assert service.not_ready() is None
    # Its write-ahead log kept the old name while it ran; stopping folded it in.
    assert len(read_db(moved).execute("SELECT span_id FROM spans").fetchall()) == 2


def health_status(service) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def test_a_full_disk_is_retryable_said_once_and_recovered_from(make_server, db_path, caplog,
                                                               monkeypatch):
    caplog.set_level(logging.WARNING, logger="agenttop")
    # No heartbeat during the test: what readiness says follows the spans' commits alone
    # (a heartbeat updates its row in place, which a file at its page limit still allows).
    monkeypatch.setattr("agenttop.serve.HEARTBEAT_S", 3600)
    service = make_server()
    call(service, TRACES, traces_request(span(1)))
    pages = service.writer.call(lambda c: c.execute("PRAGMA page_count").fetchall()[0][0])
    # A file that cannot grow past its size now: SQLite answers "database or disk is full".
    service.writer.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages.result(10)}"),
                        transaction=False).result(10)
    big = [KeyValue(key="payload", value=AnyValue(string_value="x" * 20_000))]
    refused = 0
    for n in range(2, 40):
        try:
            call(service, TRACES, traces_request(span(n, attributes=big)))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE  # retryable
            assert STORE_FAILED in e.details()
            refused += 1
    assert refused
    assert service.not_ready() == ("writes fail: the disk is full (or the file reached its "
                                   "size limit)")
    deadline = time.monotonic() + 10
    while health_status(service) != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() < deadline, "gRPC health still SERVING"
        time.sleep(0.2)
    said = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert said == [f"cannot write to {service.writer._conn.filename}: the disk is full "
                    "(or the file reached its size limit)"]
    assert not any("no transaction is active" in r.getMessage() for r in caplog.records)

    # Room again: the next write succeeds, readiness comes back, the retry is stored.
    service.writer.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"),
                        transaction=False).result(10)
    call(service, TRACES, traces_request(span(99, attributes=big)))
    assert service.not_ready() is None
    stored = {r[0] for r in read_db(db_path).execute("SELECT name FROM spans")}
    acked = {"span-1", "span-99"} | {f"span-{n}" for n in range(2, 40)
                                     if f"span-{n}" in stored}
    assert stored == acked and "span-99" in stored
    deadline = time.monotonic() + 10
    while health_status(service) != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "gRPC health never SERVING again"
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def _quiet_grpc_logs():
    logging.getLogger("grpc").setLevel(logging.CRITICAL)
