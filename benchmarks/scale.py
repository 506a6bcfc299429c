"""How each cost grows with the file: the same figures at several sizes.

For each size (default 100,000, 1,000,000 and 5,000,000 spans) builds a database through
the real decoder and writer as ``benchmarks/health.py`` does (agent-shaped traffic of 50
agents, 500 tools and 20 models, and 20 minutes of its metric series), optionally with a
high-cardinality metric shape at the largest size (``--series N``: N gauge series, one
point each, 200 metric names with 1,000 label sets and one series per name after those),
then measures:

- ingest into that file: spans/s of 20,000 more spans through the writer (decoded first),
  and the same into an empty file, for the ratio;
- bytes on disk per span;
- the reads behind the dashboard, the trace list's first page, the metrics screen's first
  page (figures for 40 rows), the agents screen (1h) and one alert evaluation (the
  shipped rules, plus three metric rules on crowded metrics) (median of runs, ms);
- the UI left open on the dashboard for 30 s with nothing arriving (its clock running):
  its CPU share and resident memory (a headless ``agenttop ui`` in a process of its own),
  then the time from each screen's key (2 to 8, then 1) to its data on screen;
- ``agenttop serve`` on the file for 30 s with nothing arriving: its CPU share.

Prints one JSON line per size.

    python benchmarks/scale.py [--sizes 100000,1000000,5000000] [--series 251000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from agent_shapes import trace_request
from agents import VIEWS
from health import NOW, build
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint, ResourceMetrics
from ui import timed

from agenttop.analysis.monitor import AlertMonitor
from agenttop.analysis.rules import Rule, load_rules
from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.queries import TraceFilter, list_traces
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.writer import Writer
from agenttop.tui.screens.agents import table_rows
from agenttop.tui.screens.dashboard import read_dashboard
from agenttop.tui.screens.metrics import read_metrics

EXTRA_SPANS = 20_000
IDLE_S = 30


def add_series(path: Path, series: int, seed: int) -> None:
    """``series`` gauge series, one point each in the last minute: up to 200 metric names
    with 1,000 label sets each, then one series per metric name (251,000: 200 crowded
    metrics and 51,000 plain ones)."""
    rng = random.Random(seed)
    writer = Writer(open_writer(path, synchronous="OFF"))
    crowded = min(series, 200 * 1000)
    names = [(f"quality_{n}", 1000) for n in range(crowded // 1000)]
    names += [(f"plain_{n}", 1) for n in range(series - crowded)]
    for first in range(0, len(names), 50):
        resource = ResourceMetrics()
        resource.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value="quality")))
        scope = resource.scope_metrics.add()
        for name, label_sets in names[first:first + 50]:
            metric = Metric(name=name, unit="1")
            for i in range(label_sets):
                metric.gauge.data_points.append(NumberDataPoint(
                    time_unix_nano=NOW - rng.randrange(60) * SECOND_NS, as_double=rng.random(),
                    attributes=[KeyValue(key="route", value=AnyValue(string_value=f"r{i}"))]))
            scope.metrics.append(metric)
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


# The UI on the dashboard, its clock running from the file's "now": left idle, then
# switched to every screen in turn (and back), timing each key to the screen's first
# applied data; prints those times as JSON.
IDLE_UI = textwrap.dedent("""
    import asyncio, json, sys, time
    from pathlib import Path
    from agenttop.tui.app import make_app
    start, base = time.time_ns(), int(sys.argv[2])
    app = make_app(Path(sys.argv[1]), clock=lambda: base + time.time_ns() - start)
    async def main():
        async with app.run_test(size=(120, 36)) as pilot:
            await asyncio.sleep(float(sys.argv[3]))
            times = {}
            for key in "23456781":
                reads = app.refresh_count
                started = time.perf_counter()
                await pilot.press(key)
                while app.refresh_count == reads:
                    await asyncio.sleep(0.002)
                times[key] = round((time.perf_counter() - started) * 1000, 1)
            print(json.dumps(times))
    asyncio.run(main())
""")


def idle_ui(path: Path) -> tuple[float, float, dict]:
    """CPU % (of one core) and RSS (MB) of the UI on the dashboard, idle for ``IDLE_S``,
    then the time from each screen's key to its data on screen (ms)."""
    proc = subprocess.Popen([sys.executable, "-c", IDLE_UI, str(path), str(NOW),
                             str(IDLE_S + 8)], stdout=subprocess.PIPE, text=True)
    cpu = cpu_over(proc.pid)
    rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    out, _ = proc.communicate(timeout=600)
    return cpu, round(rss, 1), json.loads(out.strip().splitlines()[-1])


def cpu_over(pid: int) -> float:
    """CPU % (of one core) of process ``pid`` over ``IDLE_S``, after 8 s to start."""
    watched = psutil.Process(pid)
    time.sleep(8)  # started and painted
    before = watched.cpu_times()
    time.sleep(IDLE_S)
    after = watched.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return round(100 * used / IDLE_S, 2)


def idle_serve(path: Path) -> float:
    """CPU % of ``agenttop serve`` on the file with nothing arriving (retention off, so
    that the test data, dated in the past, stays)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "agenttop.cli", "serve", "--db", str(path),
                             "--grpc", f"127.0.0.1:{port}", "--http", "off",
                             "--retention", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cpu = cpu_over(proc.pid)
        assert proc.poll() is None, "serve exited"
        return cpu
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def measure(path: Path, spans: int, runs: int, series: int) -> dict:
    conn = open_reader(path)
    # The shipped rules, and rules on three of the high-cardinality metrics.
    rules = load_rules(None) + [Rule.model_validate(
        {"name": f"q{n}", "metric": f"quality_{n}", "measure": "last", "op": "<",
         "threshold": 0.01, "window": "5m"}) for n in range(3 if series else 0)]
    monitor = AlertMonitor(path, None, rules)  # type: ignore[arg-type]  # reads only
    try:
        first = (NOW - 3600 * SECOND_NS) // MINUTE_NS
        figures = {
            "dashboard_ms": timed(lambda: read_dashboard(conn, NOW, 300), runs),
            "trace_list_ms": timed(lambda: list_traces(conn, TraceFilter(), limit=200), runs),
            "metrics_screen_ms": timed(lambda: read_metrics(conn, NOW, 300, figured=40),
                                       runs),
            "agents_1h_ms": timed(lambda: table_rows(conn, first, NOW // MINUTE_NS, VIEWS),
                                  runs),
            "alert_tick_ms": timed(lambda: monitor.read_figures(NOW), runs),
        }
    finally:
        monitor.close()
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
            figures = measure(path, built["spans"], args.runs, series)
            rate = ingest_rate(path, args.seed + 1)
            cpu, rss, switch = idle_ui(path)
            serve_cpu = idle_serve(path)
            print(json.dumps({
                "benchmark": "scale", "spans": built["spans"], "series": series,
                "build_s": built["build_s"], "db_mb": built["db_mb"], **figures,
                "ingest_spans_per_s": round(rate), "ingest_empty_spans_per_s": round(empty_rate),
                "ingest_ratio": round(rate / empty_rate, 2),
                "ui_idle_cpu_percent": cpu, "ui_idle_rss_mb": rss,
                "ui_switch_ms_max": max(switch.values()), "ui_switch_ms": switch,
                "serve_idle_cpu_percent": serve_cpu, "cpus": os.cpu_count(),
            }), flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
