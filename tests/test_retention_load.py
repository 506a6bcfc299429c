"""Under continuous load from real OpenTelemetry SDK clients, a receiver with ``--max-db-mb``
keeps its file (database plus write-ahead log) level near the limit, and ingest goes on
without a failed or dropped export."""

from __future__ import annotations

import threading
import time
from collections import Counter

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from agenttop.store.retention import file_bytes
from agenttop.store.status import read_status
from tests.conftest import read_db

LIMIT_MB = 6
LOAD_S = 25
SETTLED_S = 8  # by then the file has reached the limit (about 4 s of load) and levelled
AGENTS = 2
TRACES_PER_S = 60  # per agent: about 1.5 MB/s of spans stored in all
MARGIN = 1.2  # over the limit: what arrives between two pruning rounds


class CountingExporter(OTLPSpanExporter):
    """The SDK's gRPC exporter, counting what it exported by result."""

    def __init__(self, results: Counter, lock: threading.Lock, **kwargs) -> None:
        super().__init__(**kwargs)
        self.results, self.lock = results, lock

    def export(self, spans) -> SpanExportResult:
        result = super().export(spans)
        with self.lock:
            self.results[result.name] += len(spans)
        return result


def test_the_file_levels_off_under_the_limit_while_ingest_goes_on(make_server, db_path):
    service = make_server(max_db_mb=LIMIT_MB)
    limit = LIMIT_MB * 10**6
    results: Counter = Counter()
    lock = threading.Lock()
    exporter = CountingExporter(results, lock, endpoint=f"127.0.0.1:{service.grpc_port}",
                                insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "load"}))
    provider.add_span_processor(BatchSpanProcessor(
        exporter, max_queue_size=100_000, max_export_batch_size=512, schedule_delay_millis=100))
    tracer = provider.get_tracer("load")
    stop = threading.Event()
    created = Counter()
    last_trace: dict[int, str] = {}

    def agent(n: int) -> None:
        prompt = f"agent {n} asks: " + "where is my order? " * 40  # about 800 bytes
        while not stop.is_set():
            began = time.monotonic()
            with tracer.start_as_current_span("invoke_agent support") as root:
                for k in range(9):
                    with tracer.start_as_current_span(
                            "chat gpt-4o", attributes={"gen_ai.request.model": "gpt-4o",
                                                       "gen_ai.input.messages": prompt,
                                                       "step": k}):
                        pass
            with lock:
                created["spans"] += 10
            last_trace[n] = format(root.get_span_context().trace_id, "032x")
            stop.wait(max(0.0, 1 / TRACES_PER_S - (time.monotonic() - began)))

    agents = [threading.Thread(target=agent, args=(n,)) for n in range(AGENTS)]
    started = time.monotonic()
    for thread in agents:
        thread.start()
    samples: list[tuple[float, int]] = []
    while (elapsed := time.monotonic() - started) < LOAD_S:
        samples.append((elapsed, file_bytes(db_path)))
        time.sleep(0.2)
    stop.set()
    for thread in agents:
        thread.join()
    provider.shutdown()  # exports whatever is still queued

    # Every span was exported and acknowledged: none failed, none was dropped.
    assert results == {"SUCCESS": created["spans"]}
    sent_bytes = created["spans"] * 800
    assert sent_bytes > 3 * limit  # far more than the file may hold: pruning had to go on

    # Level: from the time it reached the limit to the end, while three times the limit
    # and more was written, the file stayed near it.
    settled = [size for at, size in samples if at >= SETTLED_S]
    peak = max(settled)
    assert peak <= limit * MARGIN, (peak, limit)
    assert min(settled) >= limit * 0.7  # and pruning did not overshoot either

    conn = read_db(db_path)
    stored = {row[0] for row in conn.execute("SELECT trace_id FROM traces")}
    assert set(last_trace.values()) <= stored  # the newest traces are there
    spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    assert 0 < spans < created["spans"] / 3
    assert spans == conn.execute("SELECT sum(span_count) FROM traces").fetchone()[0]
    retention = read_status(conn).status["retention"]
    assert retention["max_db_bytes"] == limit and retention["pruned_traces"] > 0
    print(f"\nsent {created['spans']} spans ({sent_bytes / 1e6:.0f} MB of prompts), "
          f"kept {spans}; file after {SETTLED_S} s: {min(settled) / 1e6:.1f}-"
          f"{peak / 1e6:.1f} MB, limit {limit / 1e6:.0f} MB")
