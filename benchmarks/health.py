"""Dashboard refresh time (layer health for all windows + metric figures) on a big file.

Builds a database through the real decoder and writer: agent-shaped 500-span requests
whose start times are spread over the 20 minutes before a fixed ``now`` (so every window
has data), plus a realistic set of metric series (counters, gauges, histograms, one
exponential histogram) exported every 10 s. Then times one full refresh, as the dashboard
does it, on a read-only connection, and prints one JSON line. The file lives in a temporary
directory for the run only.

    python benchmarks/health.py [--spans 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from agent_shapes import trace_request
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
)

from agenttop.analysis.health import WINDOWS_S, layer_health, metric_health
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.db import scalar
from agenttop.store.rows import Batch
from agenttop.store.writer import Writer

S = 10**9
NOW = (1_700_000_000 * S // (60 * S)) * 60 * S + 42 * S  # fixed, mid-minute
SPREAD_NS = 20 * 60 * S  # spans start over the 20 minutes before NOW
SPANS_PER_REQUEST = 500
REQUESTS_PER_TRANSACTION = 20  # 10,000 spans per commit, like a busy receiver's groups
SERVICES = ("support-agent", "billing-agent")
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
LATENCY_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


def span_batch(index: int, requests: int, seed: int) -> Batch:
    """Request ``index`` of ``requests``, built and decoded (in a worker process)."""
    rng = random.Random(seed * 1_000_003 + index)
    # Each request holds 50 traces a second apart: leave the last minute for them.
    start = NOW - SPREAD_NS + index * (SPREAD_NS - 60 * S) // max(requests, 1)
    request = trace_request(rng, SPANS_PER_REQUEST, start_ns=start,
                            service=SERVICES[index % len(SERVICES)])
    return decode("traces", request.SerializeToString(), start)


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def metric_requests(minutes: int, seed: int) -> list[bytes]:
    """One export every 10 s for ``minutes`` before NOW, as an SDK's periodic reader sends."""
    rng = random.Random(seed)
    routes = ("/chat", "/tools", "/retrieve")
    models = ("gpt-4o", "claude-sonnet")
    start = NOW - minutes * 60 * S
    requests_total = dict.fromkeys(routes, 0)
    latency = {route: [0] * (len(LATENCY_BOUNDS) + 1) for route in routes}
    embed: dict[int, int] = {}
    out = []
    for t in range(start + 10 * S, NOW + 1, 10 * S):
        metrics = []
        counter = Metric(name="requests_total", unit="1")
        counter.sum.aggregation_temporality = CUMULATIVE
        counter.sum.is_monotonic = True
        histogram = Metric(name="request_latency", unit="s")
        histogram.histogram.aggregation_temporality = CUMULATIVE
        for route in routes:
            calls = rng.randrange(20, 60)
            requests_total[route] += calls
            counter.sum.data_points.append(NumberDataPoint(
                start_time_unix_nano=start, time_unix_nano=t, as_int=requests_total[route],
                attributes=[_kv("http.route", route)]))
            for _ in range(calls):
                value = rng.lognormvariate(-1.0, 0.8)
                latency[route][next((i for i, b in enumerate(LATENCY_BOUNDS) if value <= b),
                                    len(LATENCY_BOUNDS))] += 1
            histogram.histogram.data_points.append(HistogramDataPoint(
                start_time_unix_nano=start, time_unix_nano=t, count=requests_total[route],
                explicit_bounds=LATENCY_BOUNDS, bucket_counts=latency[route],
                attributes=[_kv("http.route", route)]))
        metrics += [counter, histogram]
        tokens = Metric(name="gen_ai.client.token.usage.total", unit="{token}")
        tokens.sum.aggregation_temporality = DELTA
        tokens.sum.is_monotonic = True
        quality = Metric(name="output_quality_score", unit="1")
        for model in models:
            tokens.sum.data_points.append(NumberDataPoint(
                start_time_unix_nano=t - 10 * S, time_unix_nano=t,
                as_int=rng.randrange(1000, 9000), attributes=[_kv("gen_ai.request.model", model)]))
            quality.gauge.data_points.append(NumberDataPoint(
                time_unix_nano=t, as_double=rng.uniform(0.85, 0.99),
                attributes=[_kv("gen_ai.request.model", model)]))
        metrics += [tokens, quality]
        for _ in range(rng.randrange(50, 150)):
            value = rng.lognormvariate(3.0, 0.5)  # ms
            index = math.ceil(math.log2(value) * 8) - 1  # scale 3: (2^(i/8), 2^((i+1)/8)]
            embed[index] = embed.get(index, 0) + 1
        low = min(embed)
        embedding = Metric(name="embedding_latency", unit="ms")
        embedding.exponential_histogram.aggregation_temporality = CUMULATIVE
        embedding.exponential_histogram.data_points.append(ExponentialHistogramDataPoint(
            start_time_unix_nano=start, time_unix_nano=t, count=sum(embed.values()), scale=3,
            positive={"offset": low, "bucket_counts": [
                embed.get(i, 0) for i in range(low, max(embed) + 1)]}))
        metrics.append(embedding)
        resource = ResourceMetrics(resource={"attributes": [_kv("service.name", SERVICES[0])]})
        resource.scope_metrics.add().metrics.extend(metrics)
        out.append(ExportMetricsServiceRequest(resource_metrics=[resource]).SerializeToString())
    return out


def build(path: Path, spans: int, metric_minutes: int, seed: int, workers: int) -> dict:
    """Write the database through the real writer; requests are decoded in worker processes."""
    requests = max(1, spans // SPANS_PER_REQUEST)
    writer = Writer(open_writer(path, synchronous="OFF"))
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        # A bounded number in flight, so decoded batches never pile up in memory.
        pending: deque[Future[Batch]] = deque()
        submitted = 0
        group: list[Batch] = []
        while submitted < requests or pending:
            while submitted < requests and len(pending) < 4 * workers:
                pending.append(pool.submit(span_batch, submitted, requests, seed))
                submitted += 1
            group.append(pending.popleft().result())
            if len(group) == REQUESTS_PER_TRANSACTION or not (submitted < requests or pending):
                writer._write(group)
                group = []
    for body in metric_requests(metric_minutes, seed):
        writer._write([decode("metrics", body, NOW)])
    writer.close()
    conn = open_reader(path)
    try:
        counts = {
            "spans": scalar(conn, "SELECT count(*) FROM spans"),
            "metric_points": scalar(conn, "SELECT count(*) FROM metric_points"),
            "rollup_rows": scalar(conn, "SELECT count(*) FROM layer_minutes"),
            "duration_rows": scalar(conn, "SELECT count(*) FROM layer_minute_durations"),
        }
    finally:
        conn.close()
    return {**counts, "build_s": round(time.perf_counter() - started, 1),
            "db_mb": round(path.stat().st_size / 2**20)}


def refresh(conn: object) -> tuple[float, float]:
    """One dashboard refresh; returns (layer ms, metric ms)."""
    t0 = time.perf_counter()
    layers = layer_health(conn, NOW, WINDOWS_S)
    t1 = time.perf_counter()
    metrics = metric_health(conn, NOW, WINDOWS_S)
    t2 = time.perf_counter()
    assert layers and metrics[WINDOWS_S[-1]]
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--metric-minutes", type=int, default=20,
                        help="minutes of metric exports (every 10 s) before now")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="processes building and decoding requests")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agenttop-health-") as tmp:
        path = Path(tmp) / "health.db"
        built = build(path, args.spans, args.metric_minutes, args.seed, args.workers)
        conn = open_reader(path)
        try:
            refresh(conn)  # the first read pays for opening the file's pages
            runs = [refresh(conn) for _ in range(args.runs)]
            layers = layer_health(conn, NOW, WINDOWS_S)
            series = len(metric_health(conn, NOW, WINDOWS_S)[WINDOWS_S[-1]])
        finally:
            conn.close()
    totals = [a + b for a, b in runs]
    print(json.dumps({
        "benchmark": "health",
        **built,
        "refresh_ms_median": round(statistics.median(totals), 2),
        "refresh_ms_best": round(min(totals), 2),
        "layers_ms_median": round(statistics.median(a for a, _ in runs), 2),
        "metrics_ms_median": round(statistics.median(b for _, b in runs), 2),
        "runs": args.runs,
        "spans_in_15m": sum(layers[(layer, WINDOWS_S[-1])].spans
                            for layer, window in layers if window == WINDOWS_S[-1]),
        "metric_series": series,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
