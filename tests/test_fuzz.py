"""Property-based tests: hostile bytes and hostile-but-valid OTLP never break the receiver.

Bounded (a fixed number of examples each) so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agenttop.otlp.decode import decode
from agenttop.serve import BackgroundService
from agenttop.store.queries import SpanNode
from agenttop.store.rows import Batch
from agenttop.tui.trace_model import TOP, build_model
from tests.conftest import read_db, serve_settings
from tests.test_bad_input import LOGS, TRACES, span, traces_request

FAST = settings(max_examples=200, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow])
SERVED = settings(max_examples=120, deadline=timedelta(seconds=20),
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------- valid seed requests

def _seed_traces() -> bytes:
    nested = AnyValue()
    nested.kvlist_value.values.add(key="k", value=AnyValue(string_value="v" * 40))
    nested.kvlist_value.values.add(key="n", value=AnyValue(double_value=1.5))
    attrs = [KeyValue(key="gen_ai.prompt", value=AnyValue(string_value="hello 123-45-6789")),
             KeyValue(key="nested", value=nested),
             KeyValue(key="b", value=AnyValue(bytes_value=b"\x00\x01\x02"))]
    return traces_request(
        span(1, attributes=attrs, events=[Span.Event(name="e", attributes=attrs)],
             links=[Span.Link(trace_id=bytes([3]) * 16, span_id=bytes([4]) * 8)]),
        span(2, parent_span_id=bytes([2]) * 7 + bytes([1])),
    )


def _seed_logs() -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    rl.scope_logs.add().log_records.add(
        time_unix_nano=5, body=AnyValue(string_value="a log line"), trace_id=bytes([1]) * 16,
        span_id=bytes([2]) * 8, attributes=[KeyValue(key="x", value=AnyValue(int_value=3))])
    return request.SerializeToString()


def _seed_metrics() -> bytes:
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    gauge = metrics.add(name="g")
    gauge.gauge.data_points.add(as_double=2.5, time_unix_nano=7)
    hist = metrics.add(name="h")
    hist.histogram.data_points.add(count=3, explicit_bounds=[1.0], bucket_counts=[1, 2])
    summary = metrics.add(name="s")
    summary.summary.data_points.add(count=1, sum=1.0).quantile_values.add(quantile=0.5, value=1)
    return request.SerializeToString()


SEEDS = {"traces": _seed_traces(), "logs": _seed_logs(), "metrics": _seed_metrics()}
SIGNALS = st.sampled_from(sorted(SEEDS))


# --------------------------------------------------------------------- (a) the decoder alone

def decodes_or_rejects(signal: str, data: bytes) -> None:
    try:
        result = decode(signal, data, 1)
    except DecodeError:
        return
    assert isinstance(result, Batch)


@FAST
@given(signal=SIGNALS, data=st.binary(max_size=2048))
def test_random_bytes_decode_or_raise_decode_error(signal, data):
    decodes_or_rejects(signal, data)


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    signal = draw(SIGNALS)
    data = bytearray(SEEDS[signal])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            other = SEEDS[draw(SIGNALS)]
            start = draw(st.integers(0, len(other)))
            data[at:] = other[start:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return signal, bytes(data)


@FAST
@given(case=mutated())
def test_mutated_requests_decode_or_raise_decode_error(case):
    decodes_or_rejects(*case)


@pytest.mark.parametrize("signal", sorted(SEEDS))
def test_seeds_decode(signal):
    assert decode(signal, SEEDS[signal], 1).size >= 1


# ---------------------------------------------- (b) hostile but decodable requests, served

@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> Iterator[tuple]:
    db = tmp_path_factory.mktemp("fuzz") / "agenttop.db"
    background = BackgroundService(serve_settings(db, max_value_kb=4))
    service = background.__enter__()
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    try:
        yield service, db, channel
    finally:
        channel.close()
        background.__exit__(None, None, None)


def export(channel, method: str, body: bytes) -> grpc.StatusCode:
    try:
        channel.unary_unary(method)(body, timeout=30)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def big_string(draw) -> str:
    kind = draw(st.sampled_from(["text", "empty", "huge", "unicode"]))
    if kind == "empty":
        return ""
    if kind == "huge":
        return draw(st.sampled_from("xé€😀")) * draw(st.integers(4000, 200_000))
    if kind == "unicode":
        return draw(st.text(max_size=40))
    return draw(st.text(st.characters(codec="ascii"), max_size=20))


@st.composite
def any_values(draw, depth: int | None = None) -> AnyValue:
    if depth is None:
        depth = draw(st.sampled_from([0, 0, 0, 1, 3, 20, 36]))  # 36: about the decode limit
    leaf = draw(st.sampled_from(["string", "int", "double", "bool", "bytes", "none"]))
    if leaf == "string":
        value = AnyValue(string_value=big_string(draw))
    elif leaf == "int":
        value = AnyValue(int_value=draw(st.integers(-(2**63), 2**63 - 1)))
    elif leaf == "double":
        value = AnyValue(double_value=draw(st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf, -0.0]), st.floats())))
    elif leaf == "bool":
        value = AnyValue(bool_value=draw(st.booleans()))
    elif leaf == "bytes":
        value = AnyValue(bytes_value=draw(st.binary(max_size=64)))
    else:
        value = AnyValue()
    root = cur = AnyValue()
    for level in range(depth):  # built outside in: arrays and kvlists, alternately
        if level % 2:
            cur = cur.array_value.values.add()
        else:
            cur = cur.kvlist_value.values.add(key=big_string(draw)[:50]).value
    cur.CopyFrom(value)
    return root


IDS = [bytes(8), bytes([5]) * 8, bytes([6]) * 8, bytes([7]) * 8]


@st.composite
def hostile_span(draw, own_ids: list[bytes]) -> Span:
    def some_id(size: int) -> bytes:
        return draw(st.one_of(
            st.binary(min_size=0, max_size=20),  # invalid lengths
            st.just(bytes(size)),  # all zero
            st.sampled_from(own_ids) if size == 8 else st.just(bytes([1]) * size),
        ))

    sid = draw(st.sampled_from(own_ids)) if draw(st.booleans()) else some_id(8)
    parent = draw(st.sampled_from(
        ["none", "self", "sibling", "random"]))
    pid = {"none": b"", "self": sid, "sibling": draw(st.sampled_from(own_ids)),
           "random": some_id(8)}[parent]
    tid = bytes([1]) * 16 if draw(st.booleans()) else some_id(16)
    times = st.sampled_from([0, 1, 1_700_000_000_000_000_000, 2**63 - 1, 2**63, 2**64 - 1])
    attrs = [KeyValue(key=big_string(draw)[:100], value=draw(any_values()))
             for _ in range(draw(st.integers(0, 3)))]
    return Span(
        trace_id=tid, span_id=sid, parent_span_id=pid, name=big_string(draw),
        kind=draw(st.integers(-5, 10)), start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times), attributes=attrs,
        events=[Span.Event(name=big_string(draw), time_unix_nano=draw(times),
                           attributes=attrs[:1]) for _ in range(draw(st.integers(0, 2)))],
        links=[Span.Link(trace_id=some_id(16), span_id=some_id(8), attributes=attrs[:1])
               for _ in range(draw(st.integers(0, 2)))],
        status={"code": draw(st.integers(-3, 5)), "message": big_string(draw)},
        dropped_attributes_count=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def hostile_traces(draw) -> bytes:
    own = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=4))
    spans = [draw(hostile_span(own)) for _ in range(draw(st.integers(1, 5)))]
    if draw(st.booleans()):  # an explicit parent cycle A -> B -> A
        a, b = bytes([5]) * 8, bytes([6]) * 8
        spans += [span(1, span_id=a, parent_span_id=b), span(1, span_id=b, parent_span_id=a)]
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=big_string(draw)))
    rs.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


@st.composite
def hostile_logs(draw) -> bytes:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for _ in range(draw(st.integers(1, 3))):
        records.add(body=draw(any_values()), trace_id=draw(st.binary(max_size=20)),
                    span_id=draw(st.binary(max_size=10)), event_name=big_string(draw)[:30],
                    time_unix_nano=draw(st.sampled_from([0, 2**64 - 1])),
                    attributes=[KeyValue(key="k", value=draw(any_values()))])
    return request.SerializeToString()


OK_OR_INVALID = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


@SERVED
@given(body=hostile_traces())
def test_hostile_traces_are_ok_or_invalid_argument(fuzz_server, body):
    _, _, channel = fuzz_server
    code = export(channel, TRACES, body)
    event(code.name)
    assert code in OK_OR_INVALID


@settings(SERVED, max_examples=60)
@given(body=hostile_logs())
def test_hostile_logs_are_ok_or_invalid_argument(fuzz_server, body):
    _, _, channel = fuzz_server
    code = export(channel, LOGS, body)
    event(code.name)
    assert code in OK_OR_INVALID


JSON_COLUMNS = {
    "spans": ["attributes", "events", "links", "dropped_counts", "genai"],
    "logs": ["attributes"],
    "resources": ["attributes"],
}


def test_after_fuzzing_rows_are_valid_and_a_good_client_is_served(fuzz_server):
    _, db, channel = fuzz_server
    body = traces_request(span(77, name="well-formed"))
    response = ExportTraceServiceResponse.FromString(channel.unary_unary(TRACES)(body,
                                                                                 timeout=30))
    assert not response.HasField("partial_success")
    ExportLogsServiceResponse.FromString(channel.unary_unary(LOGS)(_seed_logs(), timeout=30))
    conn = read_db(db)
    assert conn.execute("SELECT count(*) FROM spans WHERE name = 'well-formed'").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] > 1
    for table, columns in JSON_COLUMNS.items():
        for column in columns:
            for (text,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} NOT NULL"):
                json.loads(text)  # orjson writes no NaN: it must parse strictly
    for (body_text,) in conn.execute("SELECT body FROM logs WHERE body NOT NULL"):
        assert isinstance(body_text, str)
    assert conn.execute("SELECT max(length(CAST(attributes AS BLOB))) FROM spans"
                        ).fetchone()[0] < 3 * 4 * 1024 * 50


# ------------------------------------------------------------- (c) the TUI's trace tree

@st.composite
def span_sets(draw) -> list[SpanNode]:
    n = draw(st.integers(0, 40))
    ids = [f"{i:016x}" for i in range(1, n + 1)]
    missing = ["ffffffffffffff01", "ffffffffffffff02"]
    nodes = []
    for i, sid in enumerate(ids):
        parent = draw(st.one_of(st.none(), st.just(""), st.sampled_from(ids),
                                st.sampled_from(missing)))
        nodes.append(SpanNode(span_id=sid, parent_span_id=parent, name=f"s{i}", kind=0,
                              service="svc", start_ns=draw(st.integers(0, 100)),
                              duration_ns=draw(st.integers(-5, 100)), status_code=0,
                              layer="other", failure=None, finding_count=0))
    return nodes


def test_trace_model_handles_self_parent_and_two_cycle():
    a = SpanNode("a", "a", "a", 0, "s", 0, 1, 0, "other", None, 0)
    b = SpanNode("b", "c", "b", 0, "s", 0, 1, 0, "other", None, 0)
    c = SpanNode("c", "b", "c", 0, "s", 0, 1, 0, "other", None, 0)
    model = build_model([a, b, c])
    assert_every_span_once(model, {"a", "b", "c"})


def assert_every_span_once(model, ids: set[str]) -> None:
    seen: list[str] = []
    reached: set[str] = set()
    stack = [TOP]
    steps = 0
    while stack:
        steps += 1
        assert steps <= 10 * (len(ids) + len(model.placeholders) + 1)  # terminates
        key = stack.pop()
        assert key not in reached, f"{key} reached twice"
        reached.add(key)
        for child in model.kids(key):
            if child not in model.placeholders:
                seen.append(child)
            stack.append(child)
    assert sorted(seen) == sorted(ids)
    assert set(model.placeholders) <= reached


@settings(max_examples=200, deadline=timedelta(seconds=2))
@given(spans=span_sets())
def test_trace_tree_places_every_span_exactly_once(spans):
    model = build_model(spans)
    assert_every_span_once(model, {s.span_id for s in spans})
    assert len(model) == len(spans)


@pytest.mark.parametrize("depth", [30, 38, 45, 200])
def test_nesting_around_the_protobuf_limit_is_ok_or_invalid_argument(fuzz_server, depth):
    _, _, channel = fuzz_server
    request = ExportTraceServiceRequest()
    s = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes([1]) * 16, span_id=bytes([9]) * 8, name=f"deep-{depth}")
    cur = s.attributes.add(key="deep").value
    for level in range(depth):  # built in place: copying a too-deep message would fail
        cur = (cur.array_value.values.add() if level % 2
               else cur.kvlist_value.values.add(key="k").value)
    cur.string_value = "bottom"
    code = export(channel, TRACES, request.SerializeToString())
    assert code in OK_OR_INVALID
    if depth == 200:
        assert code == grpc.StatusCode.INVALID_ARGUMENT
