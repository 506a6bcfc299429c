"""A full queue answers UNAVAILABLE with RetryInfo, and retrying exporters lose nothing.

No test here races the writer: a full queue is made by holding the writer in a commit
callback, and "the queue has room again" is waited for through the writer's own queue
(``drained``), never by sleeping or by hoping an exporter's retries outlast it.
"""

from __future__ import annotations

import gc
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agenttop.otlp.decode import decode
from agenttop.store.rows import Batch
from tests.conftest import read_db
from tests.test_bad_input import TRACES, call, span, traces_request


def hold_writer(service) -> threading.Event:
    """Fill the writer's one-item queue and keep it full until the returned event is set."""
    release = threading.Event()
    blocker = decode("traces", traces_request(span(1)), 0)
    assert service.writer.try_submit(blocker, lambda error: release.wait(60))
    return release


def drained(service) -> None:
    """Return once everything queued before now is committed and its room given back: the
    writer runs calls in queue order, after the callbacks of the batches before them."""
    service.writer.call(lambda conn: None, transaction=False).result(60)


class RetryUntilExported(SpanProcessor):
    """Exports each span as it ends and, when the exporter gives up (the SDK's exporter
    stops after six tries), exports it again: an unbounded retry budget, so what the test
    measures is the receiver (is anything lost or stored twice?), not the exporter's cap."""

    def __init__(self, exporter: SpanExporter, deadline_s: float = 90) -> None:
        self.exporter = exporter
        self.deadline_s = deadline_s
        self.gave_up = 0

    def on_end(self, span: ReadableSpan) -> None:
        deadline = time.monotonic() + self.deadline_s
        while self.exporter.export([span]) is not SpanExportResult.SUCCESS:
            self.gave_up += 1
            assert time.monotonic() < deadline, "span never stored"

    def shutdown(self) -> None:
        self.exporter.shutdown()


def test_full_queue_answers_unavailable_with_retry_info(make_server, db_path):
    service = make_server(queue_spans=1)
    release = hold_writer(service)

    with pytest.raises(grpc.RpcError) as info:
        call(service, TRACES, traces_request(span(2)))
    error = info.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    assert 0 < delay <= 5
    # The Python exporter reads the same RetryInfo from its own trailer.
    assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == retry
    assert service.writer.stats.refused >= 1

    release.set()
    drained(service)
    call(service, TRACES, traces_request(span(2)))
    names = sorted(r[0] for r in read_db(db_path).execute("SELECT name FROM spans"))
    assert names == ["span-1", "span-2"]


def test_burst_with_retries_stores_every_span_exactly_once(make_server, db_path):
    service = make_server(queue_spans=2)
    release = hold_writer(service)  # the burst meets a full queue, however fast it is
    sent: list[tuple[int, int]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        # One exporter per client, as each agent process has its own: the SDK exporter
        # re-creates its channel on UNAVAILABLE and is not meant to be shared by threads.
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{n}"}))
        provider.add_span_processor(RetryUntilExported(OTLPSpanExporter(
            endpoint=f"127.0.0.1:{service.grpc_port}", insecure=True, timeout=60)))
        tracer = provider.get_tracer("burst")
        for i in range(8):
            with tracer.start_as_current_span(f"client-{n}-span-{i}") as s:
                ctx = s.get_span_context()
            with lock:
                sent.append((ctx.trace_id, ctx.span_id))
        provider.shutdown()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while service.writer.stats.refused < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.writer.stats.refused >= 8, "the burst never met the full queue"
    release.set()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)

    rows = read_db(db_path).execute("SELECT trace_id, span_id FROM spans").fetchall()
    stored = {(int(r[0], 16), int(r[1], 16)) for r in rows}
    assert len(set(sent)) == 64
    assert len(rows) == 1 + 64  # the held span and the burst's, each once
    assert set(sent) <= stored


def test_refused_calls_leave_nothing_for_the_garbage_collector(make_server):
    # A refused call's decoded batch (and body) must go as soon as the call is answered:
    # held in a reference cycle, they piled up until Python's next full collection, by
    # 100 MB and more under sustained overload.
    service = make_server(queue_spans=1)
    release = hold_writer(service)
    gc.collect()
    gc.disable()
    try:
        for n in range(2, 5):
            with pytest.raises(grpc.RpcError) as info:
                call(service, TRACES, traces_request(span(n)))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        release.set()
        drained(service)
        call(service, TRACES, traces_request(span(5)))  # the refused calls are long done
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic_batches = sum(isinstance(o, Batch) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic_batches == 0
