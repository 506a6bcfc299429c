"""Layer health and metric figures over windows, on databases built through the real writer."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from agenttop.analysis.health import (
    ALL,
    WINDOWS_S,
    LayerHealth,
    MetricHealth,
    layer_health,
    metric_health,
)
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.rows import LAYERS
from agenttop.store.writer import Writer

S = 10**9
MS = 10**6
MINUTE = 60 * S
T0 = 1_700_000_000 * S // MINUTE * MINUTE  # the start of a minute
NOW = T0 + 30 * S  # half-way through it: windows start mid-minute
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE

_ids = itertools.count(1)


# ------------------------------------------------------------------------------- helpers

def kvs(attrs: dict[str, object]) -> list[KeyValue]:
    out = []
    for key, value in attrs.items():
        if isinstance(value, bool):
            out.append(KeyValue(key=key, value=AnyValue(bool_value=value)))
        elif isinstance(value, int):
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
        elif isinstance(value, float):
            out.append(KeyValue(key=key, value=AnyValue(double_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(string_value=str(value))))
    return out


def span(start_ns: int, duration_ns: int, op: str | None = None, error: str | None = None,
         **attrs: object) -> Span:
    """A child span (so never a root) with exact timing; ``a__b=1`` is attribute ``a.b``."""
    n = next(_ids)
    attributes = {key.replace("__", "."): value for key, value in attrs.items()}
    if op:
        attributes["gen_ai.operation.name"] = op
    if error:
        attributes["error.type"] = error
    return Span(
        trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"),
        parent_span_id=b"\xee" * 8, name=op or "work",
        start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + duration_ns,
        attributes=kvs(attributes),
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET),
    )


def traces(service: str, spans: Iterable[Span]) -> bytes:
    rs = ResourceSpans(resource={"attributes": kvs({"service.name": service})})
    rs.scope_spans.add().spans.extend(spans)
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def metrics(service: str, items: Iterable[Metric]) -> bytes:
    rm = ResourceMetrics(resource={"attributes": kvs({"service.name": service})})
    rm.scope_metrics.add().metrics.extend(items)
    return ExportMetricsServiceRequest(resource_metrics=[rm]).SerializeToString()


def build(path: Path, traces_bodies: Iterable[bytes] = (),
          metrics_bodies: Iterable[bytes] = ()) -> Path:
    """Write the requests through the real decoder and writer, as `serve` would."""
    writer = Writer(open_writer(path, synchronous="OFF"))
    batches = [decode("traces", b, NOW) for b in traces_bodies]
    batches += [decode("metrics", b, NOW) for b in metrics_bodies]
    for batch in batches:
        assert not batch.rejected, batch.error_message
        writer._write([batch])
    writer.close()
    return path


def number(t: int, value: float, start: int = NOW - 3600 * S, **attrs: object) -> NumberDataPoint:
    point = NumberDataPoint(start_time_unix_nano=start, time_unix_nano=t, attributes=kvs(attrs))
    if isinstance(value, int):
        point.as_int = value
    else:
        point.as_double = value
    return point


def counter(name: str, points: list[NumberDataPoint], temporality: int = CUMULATIVE,
            monotonic: bool = True) -> Metric:
    return Metric(name=name, unit="1", sum=Sum(data_points=points, is_monotonic=monotonic,
                                               aggregation_temporality=temporality))


def histogram(name: str, points: list[HistogramDataPoint],
              temporality: int = CUMULATIVE) -> Metric:
    return Metric(name=name, unit="s", histogram=Histogram(
        data_points=points, aggregation_temporality=temporality))


def hpoint(t: int, bounds: list[float], counts: list[int], start: int = NOW - 3600 * S,
           low: float | None = None, high: float | None = None,
           **attrs: object) -> HistogramDataPoint:
    point = HistogramDataPoint(start_time_unix_nano=start, time_unix_nano=t, count=sum(counts),
                               explicit_bounds=bounds, bucket_counts=counts,
                               attributes=kvs(attrs))
    if low is not None:
        point.min = low
    if high is not None:
        point.max = high
    return point


def bucketed(values: Iterable[float], bounds: list[float]) -> list[int]:
    """OTLP explicit buckets: (-inf, b0], (b0, b1], ..., (b_last, +inf)."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    return counts


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of all values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(round(q * len(ordered), 9)) - 1, 0)]


# --------------------------------------------------------------------------- layer data

RUNTIME_MS = list(range(1, 101))  # exact durations of the runtime spans: 1..100 ms


def layer_requests() -> list[bytes]:
    shop = []
    # tool, 20 s ago: 10 spans, 2 timeouts and 1 rate limit.
    for i in range(10):
        error = "TimeoutError" if i < 2 else "RateLimitError" if i == 2 else None
        shop.append(span(NOW - 20 * S, 100 * MS, "execute_tool", error))
    shop.append(span(NOW - 240 * S, 300 * MS, "execute_tool"))  # 4 minutes ago
    shop.append(span(NOW - 1200 * S, 300 * MS, "execute_tool"))  # 20 minutes ago: no window
    shop.append(span(NOW + 120 * S, 300 * MS, "execute_tool"))  # a skewed clock: the future
    shop += [span(NOW - 10 * S, ms * MS, "invoke_agent") for ms in RUNTIME_MS]
    # prompt: tokens, a truncated and a filtered response, two evaluation scores.
    prompt = [
        dict(gen_ai__usage__input_tokens=100, gen_ai__usage__output_tokens=10,
             gen_ai__response__finish_reasons="length", gen_ai__evaluation__score__value=0.8),
        dict(gen_ai__usage__input_tokens=200, gen_ai__usage__output_tokens=10,
             gen_ai__response__finish_reasons="content_filter",
             gen_ai__evaluation__score__value=0.6),
        dict(gen_ai__usage__input_tokens=300, gen_ai__usage__output_tokens=10,
             gen_ai__response__finish_reasons="stop"),
        dict(gen_ai__usage__input_tokens=400, gen_ai__usage__output_tokens=10),
    ]
    shop += [span(NOW - 30 * S, 900 * MS, "chat", gen_ai__request__model="gpt-4o", **a)
             for a in prompt]
    # memory: three retrievals, one empty, two with a top score.
    shop += [
        span(NOW - 5 * S, 20 * MS, "retrieval", db__vector__query__result_count=0),
        span(NOW - 5 * S, 20 * MS, "retrieval", db__vector__query__result_count=5,
             db__vector__query__top_score=0.9),
        span(NOW - 5 * S, 20 * MS, "retrieval", db__vector__query__result_count=3,
             db__vector__query__top_score=0.5),
    ]
    # auth: one failed login ten minutes ago (15 m only).
    shop.append(span(NOW - 600 * S, 50 * MS, "execute_tool", "AuthenticationError"))
    billing = [span(NOW - 10 * S, 40 * MS, "execute_tool") for _ in range(5)]
    return [traces("shop", shop), traces("billing", billing)]


@pytest.fixture(scope="module")
def layer_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("health") / "layers.db", layer_requests())


@pytest.fixture(scope="module")
def health(layer_db: Path) -> dict[tuple[str, int], LayerHealth]:
    conn = open_reader(layer_db)
    try:
        return layer_health(conn, NOW)
    finally:
        conn.close()


# -------------------------------------------------------------------------- layer tests

def test_every_layer_and_window_is_present(health):
    assert set(health) == {(layer, w) for layer in (*LAYERS, ALL) for w in WINDOWS_S}
    for (layer, window_s), h in health.items():
        assert (h.layer, h.window_s) == (layer, window_s)


def test_all_is_every_layer_together(health):
    for w in WINDOWS_S:
        every = health[(ALL, w)]
        layers = [health[(layer, w)] for layer in LAYERS]
        assert every.spans == sum(h.spans for h in layers)
        assert every.failures == sum(h.failures for h in layers)
        for category in {c for h in layers for c in h.by_failure}:
            assert every.by_failure[category] == sum(h.by_failure.get(category, 0)
                                                     for h in layers)
        assert every.max_ms == max((h.max_ms for h in layers if h.max_ms is not None),
                                   default=None)
        assert every.input_tokens == sum(h.input_tokens for h in layers)


def test_counts_failures_and_categories(health):
    tool = health[("tool", 60)]
    assert (tool.spans, tool.failures) == (15, 3)  # 10 from shop, 5 from billing
    assert tool.failure_rate == pytest.approx(0.2)
    assert tool.by_failure == {"timeout": 2, "rate_limit": 1}
    auth = health[("auth", 900)]
    assert (auth.spans, auth.failures, auth.by_failure) == (1, 1, {"auth": 1})
    assert health[("runtime", 60)].by_failure == {}  # only categories seen


def test_windows_are_whole_minutes_ending_now(health):
    # NOW is 30 s into its minute: the 1 m window covers that minute and the one before.
    assert health[("tool", 60)].spans == 15
    assert health[("tool", 300)].spans == 16  # + the span 4 minutes ago
    assert health[("tool", 900)].spans == 16  # 20 minutes ago and in the future: never
    assert health[("auth", 300)].spans == 0 and health[("auth", 900)].spans == 1
    # throughput divides by what the window really covers: 90 s for the 1 m window
    assert health[("tool", 60)].throughput == pytest.approx(15 / 90)
    assert health[("tool", 300)].throughput == pytest.approx(16 / 330)
    assert health[("tool", 900)].throughput == pytest.approx(16 / 930)


def test_empty_layers_have_zeros_and_no_rates(health):
    for window_s in WINDOWS_S:
        other = health[("other", window_s)]
        assert other == LayerHealth(
            layer="other", window_s=window_s, spans=0, failures=0, failure_rate=None,
            by_failure={}, throughput=0.0, p50_ms=None, p95_ms=None, p99_ms=None,
            max_ms=None, input_tokens=0, output_tokens=0,
        )
    auth = health[("auth", 60)]
    assert auth.failure_rate is None and auth.p99_ms is None and auth.eval_score is None


def test_latency_quantiles_from_buckets(health):
    runtime = health[("runtime", 60)]
    assert runtime.spans == 100
    assert runtime.max_ms == pytest.approx(100)
    for estimate, q in ((runtime.p50_ms, 0.50), (runtime.p95_ms, 0.95), (runtime.p99_ms, 0.99)):
        exact = exact_quantile(RUNTIME_MS, q)
        # A bucket's upper bound: never below the exact value, at most one bucket above.
        assert exact <= estimate <= exact * 1.095, (q, estimate, exact)
    assert runtime.p99_ms <= runtime.max_ms  # capped at the exact maximum
    tool = health[("tool", 60)]  # all 100 ms and 40 ms
    assert tool.p50_ms == pytest.approx(100, rel=0.095) and tool.max_ms == pytest.approx(100)
    assert health[("tool", 300)].max_ms == pytest.approx(300)


def test_tokens_and_quality(health):
    prompt = health[("prompt", 60)]
    assert (prompt.spans, prompt.input_tokens, prompt.output_tokens) == (4, 1000, 40)
    assert (prompt.truncated, prompt.content_filtered) == (1, 1)
    assert prompt.eval_score == pytest.approx(0.7)
    memory = health[("memory", 60)]
    assert (memory.retrievals, memory.empty_retrievals) == (3, 1)
    assert memory.top_score == pytest.approx(0.7)
    assert memory.eval_score is None and health[("prompt", 60)].top_score is None


def test_service_filter(layer_db):
    conn = open_reader(layer_db)
    try:
        shop = layer_health(conn, NOW, (60,), service="shop")
        billing = layer_health(conn, NOW, (60,), service="billing")
        nobody = layer_health(conn, NOW, (60,), service="nobody")
    finally:
        conn.close()
    assert (shop[("tool", 60)].spans, shop[("tool", 60)].failure_rate) == (10, 0.3)
    assert (billing[("tool", 60)].spans, billing[("tool", 60)].failures) == (5, 0)
    assert billing[("tool", 60)].max_ms == pytest.approx(40)
    assert billing[("runtime", 60)].spans == 0 and shop[("runtime", 60)].spans == 100
    assert all(h.spans == 0 for h in nobody.values()) and len(nobody) == len(LAYERS) + 1


def test_reads_rollups_only_in_two_queries(layer_db):
    conn = open_reader(layer_db)
    statements: list[str] = []

    def trace(_cursor, sql, _bindings):
        statements.append(sql)
        return True

    conn.exec_trace = trace
    try:
        layer_health(conn, NOW)
    finally:
        conn.close()
    assert len(statements) == 2
    assert "FROM layer_minutes" in statements[0]
    assert "FROM layer_minute_durations" in statements[1]
    assert not any(re.search(r"\b(FROM|JOIN)\s+spans\b", s) for s in statements)


# -------------------------------------------------------------------------- metric data

LATENCY_BOUNDS = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
LATENCY_BEFORE = [5, 50, 50, 50, 50, 50, 50]  # counted before the 1 m window
LATENCY_WINDOW = [0, 10, 20, 40, 20, 10, 0]  # the 100 observations in it
SAMPLE_BOUNDS = [round(0.05 * i, 2) for i in range(1, 41)]  # 0.05 .. 2.0
_rng = random.Random(7)
SAMPLE = [min(max(_rng.gauss(1.0, 0.25), 0.001), 1.999) for _ in range(5000)]
OLD_SAMPLE = [_rng.uniform(1.5, 2.0) for _ in range(3000)]  # before the window: must not count


def add(*lists: list[int]) -> list[int]:
    return [sum(values) for values in zip(*lists, strict=True)]


def metric_requests() -> list[bytes]:
    restart = NOW - 15 * S
    items = [
        # A counter that restarts without a new start time: the value drops.
        counter("requests_total", [
            number(NOW - 290 * S, 50, route="/chat"),
            number(NOW - 50 * S, 100, route="/chat"),
            number(NOW - 40 * S, 110, route="/chat"),
            number(NOW - 30 * S, 120, route="/chat"),
            number(NOW - 20 * S, 5, route="/chat"),
            number(NOW - 10 * S, 15, route="/chat"),
        ]),
        # One whose restart shows only in its start time (the new value is higher).
        counter("requests_total", [
            number(NOW - 40 * S, 10, route="/tool"),
            number(NOW - 20 * S, 30, route="/tool"),
            number(NOW - 10 * S, 40, start=restart, route="/tool"),
        ]),
        counter("tokens_total", [
            number(NOW - 200 * S, 1000), number(NOW - 50 * S, 100),
            number(NOW - 30 * S, 200), number(NOW - 10 * S, 300),
        ], temporality=DELTA),
        counter("queue_depth", [number(NOW - 50 * S, 10), number(NOW - 10 * S, 4)],
                monotonic=False),
        Metric(name="output_quality_score", unit="1", gauge=Gauge(data_points=[
            number(NOW - 50 * S, 0.95), number(NOW - 10 * S, 0.85),
            number(NOW + 10 * S, 0.10),  # after now: not yet
        ])),
        # Cumulative latency: a point 16 minutes ago (before every window), one 70 s ago
        # (before the 1 m window) and two inside it.
        histogram("request_latency", [
            hpoint(NOW - 960 * S, LATENCY_BOUNDS, [1] * 7),
            hpoint(NOW - 70 * S, LATENCY_BOUNDS, LATENCY_BEFORE),
            hpoint(NOW - 40 * S, LATENCY_BOUNDS, add(LATENCY_BEFORE, [0, 5, 10, 20, 10, 5, 0])),
            hpoint(NOW - 10 * S, LATENCY_BOUNDS, add(LATENCY_BEFORE, LATENCY_WINDOW)),
        ]),
        # A known distribution, cumulative, with min and max sent.
        histogram("sampled_latency", [
            hpoint(NOW - 50 * S, SAMPLE_BOUNDS, bucketed(OLD_SAMPLE, SAMPLE_BOUNDS),
                   low=min(OLD_SAMPLE), high=max(OLD_SAMPLE)),
            hpoint(NOW - 10 * S, SAMPLE_BOUNDS, bucketed(OLD_SAMPLE + SAMPLE, SAMPLE_BOUNDS),
                   low=min(OLD_SAMPLE + SAMPLE), high=max(OLD_SAMPLE + SAMPLE)),
        ]),
        # Started inside the window: its only point is all in the window.
        histogram("fresh_latency", [
            hpoint(NOW - 10 * S, LATENCY_BOUNDS, LATENCY_WINDOW, start=NOW - 30 * S),
        ]),
        # Delta: the window's points add up; one point with other bounds is left out.
        histogram("tool_latency", [
            hpoint(NOW - 200 * S, LATENCY_BOUNDS, [150, 0, 0, 0, 0, 0, 0]),
            hpoint(NOW - 40 * S, LATENCY_BOUNDS, [0, 5, 10, 20, 10, 5, 0]),
            hpoint(NOW - 30 * S, [1.0], [7, 7]),
            hpoint(NOW - 10 * S, LATENCY_BOUNDS, [0, 5, 10, 20, 10, 5, 0]),
        ], temporality=DELTA),
        # A restart (the count drops) adds what the new process counted.
        histogram("restarted_latency", [
            hpoint(NOW - 50 * S, LATENCY_BOUNDS, [0, 10, 0, 0, 0, 0, 0]),
            hpoint(NOW - 30 * S, LATENCY_BOUNDS, [0, 20, 0, 0, 0, 0, 0]),
            hpoint(NOW - 10 * S, LATENCY_BOUNDS, [0, 0, 5, 0, 0, 0, 0]),
        ]),
        # New bounds: the newest point alone (and what it gained since the change).
        histogram("rebounded_latency", [
            hpoint(NOW - 50 * S, LATENCY_BOUNDS, [0, 10, 0, 0, 0, 0, 0]),
            hpoint(NOW - 30 * S, [1.0], [3, 1]),
            hpoint(NOW - 10 * S, [1.0], [5, 1]),
        ]),
        # Open-ended first and last buckets: closed by min and max when sent, else by 0
        # and the last bound.
        histogram("bounded_latency", [
            hpoint(NOW - 10 * S, [1.0, 2.0], [30, 0, 10], low=0.5, high=4.0),
        ], temporality=DELTA),
        histogram("open_latency", [hpoint(NOW - 10 * S, [1.0, 2.0], [30, 0, 10])],
                  temporality=DELTA),
        Metric(name="drift", unit="1", exponential_histogram=ExponentialHistogram(
            aggregation_temporality=DELTA, data_points=[
                # (-2, -1] x10, (-4, -2] x10, and (1, 2] x20 at offset -2
                ExponentialHistogramDataPoint(
                    time_unix_nano=NOW - 10 * S, count=40, scale=0,
                    negative={"offset": 0, "bucket_counts": [10, 10]},
                    positive={"offset": -2, "bucket_counts": [0, 0, 20]}),
            ])),
        Metric(name="embedding_latency", unit="s", exponential_histogram=ExponentialHistogram(
            aggregation_temporality=DELTA, data_points=[
                # scale 0: (1, 2] x10, (2, 4] x10, and 10 zeros
                ExponentialHistogramDataPoint(
                    time_unix_nano=NOW - 40 * S, count=30, scale=0, zero_count=10,
                    positive={"offset": 0, "bucket_counts": [10, 10]}),
                # scale 1: (1, 1.41] x5, (1.41, 2] x5 -> (1, 2] at scale 0
                ExponentialHistogramDataPoint(
                    time_unix_nano=NOW - 20 * S, count=10, scale=1,
                    positive={"offset": 0, "bucket_counts": [5, 5]}),
            ])),
        Metric(name="cache_latency", unit="s", exponential_histogram=ExponentialHistogram(
            aggregation_temporality=CUMULATIVE, data_points=[
                ExponentialHistogramDataPoint(
                    start_time_unix_nano=NOW - 3600 * S, time_unix_nano=NOW - 40 * S,
                    count=10, scale=0, positive={"offset": 0, "bucket_counts": [10]}),
                # (2, 4] x10 more, at a finer scale; (-2, -1] x1
                ExponentialHistogramDataPoint(
                    start_time_unix_nano=NOW - 3600 * S, time_unix_nano=NOW - 10 * S,
                    count=21, scale=1,
                    positive={"offset": 0, "bucket_counts": [5, 5, 5, 5]},
                    negative={"offset": 0, "bucket_counts": [0, 1]}),
            ])),
        Metric(name="rpc_duration", unit="s", summary=Summary(data_points=[
            SummaryDataPoint(time_unix_nano=NOW - 30 * S, count=100, sum=120.0,
                             quantile_values=[{"quantile": 0.5, "value": 1.0},
                                              {"quantile": 0.99, "value": 3.0}]),
            SummaryDataPoint(time_unix_nano=NOW - 10 * S, count=150, sum=180.0,
                             quantile_values=[{"quantile": 0.5, "value": 1.2},
                                              {"quantile": 0.9, "value": 2.5},
                                              {"quantile": 0.99, "value": 4.0}]),
        ])),
        Metric(name="tied", unit="s", summary=Summary(data_points=[
            SummaryDataPoint(time_unix_nano=NOW - 10 * S, count=3, sum=3.0,
                             quantile_values=[{"quantile": 0.45, "value": 1.0},
                                              {"quantile": 0.55, "value": 2.0}]),
        ])),
        Metric(name="minmax_only", unit="s", summary=Summary(data_points=[
            SummaryDataPoint(time_unix_nano=NOW - 10 * S, count=3, sum=3.0,
                             quantile_values=[{"quantile": 0.0, "value": 0.5},
                                              {"quantile": 1.0, "value": 2.0}]),
        ])),
    ]
    other = [counter("requests_total", [number(NOW - 30 * S, 1, route="/chat"),
                                        number(NOW - 10 * S, 21, route="/chat")])]
    return [metrics("shop", items), metrics("billing", other)]


@pytest.fixture(scope="module")
def metric_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("health") / "metrics.db",
                 metrics_bodies=metric_requests())


@pytest.fixture(scope="module")
def figures(metric_db: Path) -> dict[int, list[MetricHealth]]:
    conn = open_reader(metric_db)
    try:
        return metric_health(conn, NOW)
    finally:
        conn.close()


def one(figures: dict[int, list[MetricHealth]], window_s: int, name: str,
        service: str = "shop", **attrs: object) -> MetricHealth:
    found = [m for m in figures[window_s] if m.name == name and m.service == service
             and m.attributes == attrs]
    assert len(found) == 1, (name, found)
    return found[0]


# ------------------------------------------------------------------------- metric tests

def test_series_per_window(figures):
    assert set(figures) == set(WINDOWS_S)
    keys = [(m.name, m.service, tuple(sorted(m.attributes.items()))) for m in figures[60]]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    assert ("requests_total", "billing", (("route", "/chat"),)) in keys
    # tokens_total's last point in 5 m is 200 s ago: in 5 m and 15 m, and in 1 m by others
    assert one(figures, 60, "tokens_total").points == 3
    assert one(figures, 300, "tokens_total").points == 4
    assert one(figures, 60, "requests_total", route="/chat").points == 5
    assert one(figures, 300, "requests_total", route="/chat").points == 6


def test_counter_rate_cumulative_with_resets(figures):
    chat = one(figures, 60, "requests_total", route="/chat")
    assert chat.type == "sum" and chat.last == 15
    # 100 -> 110 -> 120, drop to 5 (restart: all 5 new), -> 15: 35 over 40 s
    assert chat.rate == pytest.approx(35 / 40)
    assert one(figures, 300, "requests_total", route="/chat").rate == pytest.approx(85 / 280)
    # a new start time after the last point is a restart even though 40 > 30
    assert one(figures, 60, "requests_total", route="/tool").rate == pytest.approx(60 / 30)
    assert one(figures, 60, "requests_total", "billing", route="/chat").rate == pytest.approx(1)
    # an up-down counter going down is a decrease, not a restart
    assert one(figures, 60, "queue_depth").rate == pytest.approx(-6 / 40)


def test_counter_rate_delta_and_single_point(figures, metric_db):
    assert one(figures, 60, "tokens_total").rate == pytest.approx(600 / 60)
    assert one(figures, 300, "tokens_total").rate == pytest.approx(1600 / 300)
    assert one(figures, 60, "tokens_total").last == 300
    conn = open_reader(metric_db)
    try:
        lone = metric_health(conn, NOW, (15,), names=["requests_total"])[15]
    finally:
        conn.close()
    assert {m.points for m in lone} == {1} and all(m.rate is None for m in lone)
    assert {m.last for m in lone} == {15, 40, 21}


def test_gauge_last_mean_min_max(figures):
    quality = one(figures, 60, "output_quality_score")
    assert (quality.type, quality.last, quality.points, quality.rate) == ("gauge", 0.85, 2, None)
    # Over the window's two points (the one after now is not in it).
    assert (quality.min, quality.max) == (0.85, 0.95)
    assert quality.mean == pytest.approx(0.9)


def test_histogram_cumulative(figures):
    latency = one(figures, 60, "request_latency")
    assert latency.type == "histogram" and latency.unit == "s"
    # the point 70 s ago is the baseline: only LATENCY_WINDOW counts
    assert latency.count == 100
    assert latency.p50 == pytest.approx(0.75)  # rank 50: half-way through (0.5, 1]
    assert latency.p95 == pytest.approx(3.75)  # rank 95: half-way through (2.5, 5]
    assert latency.p99 == pytest.approx(4.75)
    # 5 m: no point before it within reach, so the first point in it is the baseline
    assert one(figures, 300, "request_latency").count == 100
    # 15 m: the point 16 minutes ago is read as the baseline
    assert one(figures, 900, "request_latency").count == sum(LATENCY_BEFORE) + 100 - 7
    restarted = one(figures, 60, "restarted_latency")
    assert restarted.count == 15  # 10 before the restart, 5 after
    assert restarted.p50 == pytest.approx(0.1 + 0.15 * 7.5 / 10)
    rebounded = one(figures, 60, "rebounded_latency")
    assert (rebounded.count, rebounded.p50) == (6, pytest.approx(1.0 * 3 / 5))
    fresh = one(figures, 60, "fresh_latency")
    assert (fresh.count, fresh.p50) == (100, pytest.approx(0.75))


def test_histogram_known_distribution(figures):
    sampled = one(figures, 60, "sampled_latency")
    assert sampled.count == len(SAMPLE)
    for estimate, q in ((sampled.p50, 0.5), (sampled.p95, 0.95), (sampled.p99, 0.99)):
        assert estimate == pytest.approx(exact_quantile(SAMPLE, q), abs=0.05), q


def test_histogram_delta(figures):
    tool = one(figures, 60, "tool_latency")
    assert tool.count == 100 + 14  # counts every point; quantiles only the matching bounds
    assert (tool.p50, tool.p95) == (pytest.approx(0.75), pytest.approx(3.75))
    # 5 m adds 150 observations at or below 0.1 s; the open first bucket starts at 0
    five = one(figures, 300, "tool_latency")
    assert five.count == 264 and five.p50 == pytest.approx(0.1 * 125 / 150)


def test_histogram_open_buckets(figures):
    bounded = one(figures, 60, "bounded_latency")
    assert bounded.p50 == pytest.approx(0.5 + 0.5 * 20 / 30)  # first bucket from the min
    assert bounded.p95 == pytest.approx(2 + 2 * 8 / 10)  # last bucket up to the max
    opened = one(figures, 60, "open_latency")
    assert opened.p50 == pytest.approx(20 / 30)  # from 0
    assert (opened.p95, opened.p99) == (2.0, 2.0)  # nothing is known past the last bound


def test_exponential_histogram(figures):
    delta = one(figures, 60, "embedding_latency")
    assert delta.type == "exponential_histogram" and delta.count == 40
    # zero x10, (1, 2] x20, (2, 4] x10
    assert delta.p50 == pytest.approx(1.5)
    assert delta.p95 == pytest.approx(2 + 2 * 8 / 10)
    assert delta.p99 == pytest.approx(2 + 2 * 9.6 / 10)
    cumulative = one(figures, 60, "cache_latency")
    # new since the first point, downscaled to scale 0: (-2, -1] x1 and (2, 4] x10; the
    # negative bucket comes first, so the median is rank 5.5 - 1 = 4.5 into (2, 4]
    assert cumulative.count == 11
    assert cumulative.p50 == pytest.approx(2 + 2 * 4.5 / 10)
    assert cumulative.p99 == pytest.approx(2 + 2 * 9.89 / 10)


def test_exponential_order_and_offset(figures):
    drift = one(figures, 60, "drift")
    # ascending: (-4, -2], (-2, -1], then (1, 2] (index -2 + 2 = 0 at scale 0)
    assert drift.p50 == pytest.approx(-1.0)
    assert drift.p95 == pytest.approx(1 + 18 / 20)
    assert one(figures, 60, "drift").count == 40


def test_summary(figures):
    rpc = one(figures, 60, "rpc_duration")
    assert (rpc.type, rpc.count, rpc.points) == ("summary", 150, 2)
    assert (rpc.p50, rpc.p95, rpc.p99) == (1.2, 4.0, 4.0)  # p95 from the nearer 0.99
    assert one(figures, 60, "tied").p50 == 2.0  # a tie goes to the higher quantile
    only = one(figures, 60, "minmax_only")
    assert (only.p50, only.p95, only.p99) == (None, 2.0, 2.0)


def test_names_filter(metric_db):
    conn = open_reader(metric_db)
    try:
        chosen = metric_health(conn, NOW, names=["output_quality_score", "absent"])
        nothing = metric_health(conn, NOW, names=[])
    finally:
        conn.close()
    assert [m.name for m in chosen[900]] == ["output_quality_score"]
    assert nothing == {w: [] for w in WINDOWS_S}
