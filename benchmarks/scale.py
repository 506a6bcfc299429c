"""How each cost grows with the file: the same figures at several sizes.

For each size (default 100,000, 1,000,000 and 5,000,000 spans) builds a database through
the real decoder and writer as ``benchmarks/health.py`` does (agent-shaped traffic of 50
agents, 500 tools and 20 models, and 20 minutes of its metric series), optionally with a
high-cardinality metric shape at the largest size (``--series N``: N gauge series, 1,000
label sets per metric name, one point each), then measures:

- ingest into that file: spans/s of 20,000 more spans through the writer (decoded first),
  and the same into an empty file, for the ratio;
- bytes on disk per span;
- the dashboard's refresh (every layer and window, the metric figures), the trace list's
  first page, the metrics screen's read, and the agents screen's refresh (median of runs);
- the UI left open on the dashboard for 30 s with nothing arriving: its CPU share and
  resident memory (a headless ``agenttop ui`` in a process of its own).

Prints one JSON line per size.

    python benchmarks/scale.py [--sizes 100000,1000000,5000000] [--series 251000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from agent_shapes import trace_request
from agents import VIEWS
from health import NOW, build, refresh
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint, ResourceMetrics
from ui import timed

from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.queries import TraceFilter, list_traces
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.writer import Writer
from agenttop.tui.screens.agents import table_rows
from agenttop.tui.screens.metrics import read_metrics

EXTRA_SPANS = 20_000
IDLE_S = 30


def add_series(path: Path, series: int, seed: int) -> None:
    """``series`` gauge series: 1,000 label sets per metric name, one point each."""
    rng = random.Random(seed)
    writer = Writer(open_writer(path, synchronous="OFF"))
    per_name = 1000
    for first in range(0, series, per_name):
        metric = Metric(name=f"quality_{first // per_name}", unit="1")
        for i in range(min(per_name, series - first)):
            metric.gauge.data_points.append(NumberDataPoint(
                time_unix_nano=NOW - rng.randrange(60) * SECOND_NS, as_double=rng.random(),
                attributes=[KeyValue(key="route", value=AnyValue(string_value=f"r{i}"))]))
        resource = ResourceMetrics()
        resource.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value="quality")))
        resource.scope_metrics.add().metrics.append(metric)
        body = ExportMetricsServiceRequest(resource_metrics=[resource]).SerializeToString()
        writer._write([decode("metrics", body, NOW)])
    writer.close()


def ingest_rate(path: Path, seed: int) -> float:
    """Spans/s of ``EXTRA_SPANS`` more spans written into ``path`` (decoded beforehand)."""
    rng = random.Random(seed)
    batches = [decode("traces", trace_request(rng, 500, start_ns=NOW - 60 * SECOND_NS
                                              + i * SECOND_NS).SerializeToString(), NOW)
               for i in range(EXTRA_SPANS // 500)]
    writer = Writer(open_writer(path, synchronous="NORMAL"))
    started = time.perf_counter()
    for i in range(0, len(batches), 4):
        writer._write(batches[i:i + 4])
    elapsed = time.perf_counter() - started
    writer.close()
    return EXTRA_SPANS / elapsed


IDLE_UI = textwrap.dedent("""
    import sys, asyncio
    from pathlib import Path
    from agenttop.tui.app import make_app
    app = make_app(Path(sys.argv[1]), clock=lambda: int(sys.argv[2]))
    async def main():
        async with app.run_test(size=(120, 36)) as pilot:
            await asyncio.sleep(float(sys.argv[3]))
    asyncio.run(main())
""")


def idle_ui(path: Path) -> tuple[float, float]:
    """CPU % (of one core) and RSS (MB) of the UI on the dashboard, idle for ``IDLE_S``."""
    proc = subprocess.Popen([sys.executable, "-c", IDLE_UI, str(path), str(NOW),
                             str(IDLE_S + 8)])
    watched = psutil.Process(proc.pid)
    time.sleep(8)  # started and painted
    before = watched.cpu_times()
    time.sleep(IDLE_S)
    after = watched.cpu_times()
    rss = watched.memory_info().rss / 2**20
    proc.wait(timeout=60)
    used = (after.user - before.user) + (after.system - before.system)
    return round(100 * used / IDLE_S, 2), round(rss, 1)


def measure(path: Path, spans: int, runs: int) -> dict:
    conn = open_reader(path)
    try:
        first = (NOW - 3600 * SECOND_NS) // MINUTE_NS
        figures = {
            "dashboard_ms": timed(lambda: refresh(conn), runs),
            "trace_list_ms": timed(lambda: list_traces(conn, TraceFilter(), limit=200), runs),
            "metrics_screen_ms": timed(lambda: read_metrics(conn, NOW, 300), runs),
            "agents_1h_ms": timed(lambda: table_rows(conn, first, NOW // MINUTE_NS, VIEWS),
                                  runs),
        }
    finally:
        conn.close()
    return {"bytes_per_span": round(path.stat().st_size / spans), **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--series", type=int, default=0,
                        help="metric series added at the largest size (251000: the issue's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.db"
        open_writer(empty).close()
        empty_rate = ingest_rate(empty, args.seed)
        for spans in sizes:
            path = Path(tmp) / f"scale-{spans}.db"
            built = build(path, spans, 20, args.seed, max(1, (os.cpu_count() or 2) - 1))
            series = args.series if spans == max(sizes) else 0
            if series:
                add_series(path, series, args.seed)
            figures = measure(path, built["spans"], args.runs)
            rate = ingest_rate(path, args.seed + 1)
            cpu, rss = idle_ui(path)
            print(json.dumps({
                "benchmark": "scale", "spans": built["spans"], "series": series,
                "build_s": built["build_s"], "db_mb": built["db_mb"], **figures,
                "ingest_spans_per_s": round(rate), "ingest_empty_spans_per_s": round(empty_rate),
                "ingest_ratio": round(rate / empty_rate, 2),
                "ui_idle_cpu_percent": cpu, "ui_idle_rss_mb": rss, "cpus": os.cpu_count(),
            }), flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
