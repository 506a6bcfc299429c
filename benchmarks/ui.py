"""The terminal UI on a big file: first paint of the dashboard and the trace list, and
opening a 10,000-span trace.

Builds a 1,000,000-span database through the real decoder and writer (as
``benchmarks/health.py`` does), adds one trace of 10,000 spans as the newest, then drives
the real app with Textual's Pilot at 120x36 and times, from the key press (or the app's
start) to the moment the screen has applied its data:

- the dashboard's first paint, the trace list's first paint, and the big trace opened;
- the queries under them, alone: the first page of the trace list, and the big trace's
  spans.

Prints one JSON line. Targets: trace-list query <= 100 ms, big trace open <= 500 ms.

    python benchmarks/ui.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from agent_shapes import trace_spans
from health import NOW, build
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.queries import list_traces
from agenttop.store.queries import trace_spans as query_spans
from agenttop.store.writer import Writer
from agenttop.tui.app import make_app
from agenttop.tui.screens.dashboard import DashboardScreen
from agenttop.tui.screens.trace import TraceScreen
from agenttop.tui.screens.traces import TracesScreen

BIG = 10_000


def add_big_trace(path: Path, seed: int) -> str:
    rng = random.Random(seed)
    trace_id = rng.randbytes(16)
    spans = trace_spans(rng, NOW - 2 * 10**9, n=BIG, trace_id=trace_id)
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    request.resource_spans[0].resource.attributes.add(key="service.name").value.string_value = (
        "support-agent")
    scope.spans.extend(spans)
    writer = Writer(open_writer(path, synchronous="OFF"))
    for start in range(0, BIG, 1000):  # as an exporter would send it, in batches
        part = ExportTraceServiceRequest()
        part.resource_spans.add().CopyFrom(request.resource_spans[0])
        del part.resource_spans[0].scope_spans[0].spans[:]
        part.resource_spans[0].scope_spans[0].spans.extend(spans[start:start + 1000])
        writer._write([decode("traces", part.SerializeToString(), NOW)])
    writer.close()
    return trace_id.hex()


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def applied_times() -> dict[type, list[float]]:
    """Record when each screen class applies data (wraps ``apply``)."""
    seen: dict[type, list[float]] = {}
    for cls in (DashboardScreen, TracesScreen, TraceScreen):
        original = cls.apply

        def apply(self, data, _original=original, _cls=cls):
            _original(self, data)
            seen.setdefault(_cls, []).append(time.perf_counter())

        cls.apply = apply
    return seen


async def drive(db: Path, big_trace: str) -> dict:
    seen = applied_times()
    app = make_app(db, clock=lambda: NOW)

    async def until(cls: type, after: float, timeout: float = 60) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            hits = [t for t in seen.get(cls, []) if t > after]
            if hits:
                return (hits[0] - after) * 1000
            await asyncio.sleep(0.001)
        raise SystemExit(f"{cls.__name__} never painted")

    started = time.perf_counter()
    async with app.run_test(size=(120, 36)) as pilot:
        dashboard_ms = await until(DashboardScreen, started)
        pressed = time.perf_counter()
        await pilot.press("2")
        traces_ms = await until(TracesScreen, pressed)
        await pilot.pause()
        top = app.screen.query_one("DataTable")
        first_row = str(top.coordinate_to_cell_key((0, 0)).row_key.value)
        assert big_trace.startswith(first_row) or big_trace == first_row, (first_row, big_trace)
        pressed = time.perf_counter()
        await pilot.press("enter")
        trace_applied_ms = await until(TraceScreen, pressed)
        await pilot.pause()  # the tree is drawn
        trace_open_ms = (time.perf_counter() - pressed) * 1000
    return {
        "dashboard_first_paint_ms": round(dashboard_ms, 1),
        "trace_list_first_paint_ms": round(traces_ms, 1),
        "big_trace_data_ms": round(trace_applied_ms, 1),
        "big_trace_open_ms": round(trace_open_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ui.db"
        built = build(db, args.spans, 20, args.seed, args.workers)
        big = add_big_trace(db, args.seed)
        conn = open_reader(db)
        try:
            list_ms = timed(lambda: list_traces(conn, None, limit=200), 20)
            spans_ms = timed(lambda: query_spans(conn, big), 5)
        finally:
            conn.close()
        ui = asyncio.run(drive(db, big))
    print(json.dumps({
        "benchmark": "ui", "spans": built["spans"] + BIG, "big_trace_spans": BIG,
        "trace_list_query_ms": list_ms, "big_trace_query_ms": spans_ms, **ui,
        "build_s": built["build_s"], "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
