"""How long one retention step holds the writer, on a big file.

Builds a database through the real decoder and writer: agent-shaped 500-span requests (ten
spans a trace), the first half dated and received two weeks before a fixed "now", the rest
in the last hour. Then runs the steps ``agenttop serve`` runs, each one ``Writer.call`` on
an otherwise idle writer, and times each from submission to commit: pruning by age (7 days:
the old half goes), pruning by size (down to half of what is left), and incremental vacuum
of the freed pages. Prints one JSON line.

    python benchmarks/prune.py [--spans 200000] [--sync full]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from agent_shapes import trace_request

from agenttop.otlp.decode import decode
from agenttop.store import open_writer
from agenttop.store.retention import (
    SPANS_PER_STEP,
    VACUUM_PAGES_PER_STEP,
    Step,
    file_bytes,
    page_sizes,
    prune_by_age,
    prune_by_size,
    vacuum_step,
)
from agenttop.store.writer import Writer

S = 10**9
DAY = 86400 * S
NOW = 1_750_000_000 * S
SPANS_PER_REQUEST = 500


def build(writer: Writer, clock: list[int], spans: int, seed: int) -> None:
    rng = random.Random(seed)
    requests = max(2, spans // SPANS_PER_REQUEST)
    for i in range(requests):
        old = i < requests // 2
        start = (NOW - 14 * DAY if old else NOW - 3600 * S) + i * 50 * S
        clock[0] = start  # the writer's clock: when the trace rows were last updated
        body = trace_request(rng, SPANS_PER_REQUEST, start_ns=start).SerializeToString()
        done: Future = Future()
        assert writer.try_submit(decode("traces", body, start), done.set_result)
        assert done.result(60) is None


def timed(writer: Writer, fn: Callable, results: list) -> float:
    """Milliseconds from submitting ``fn`` to its commit (the writer does nothing else)."""
    started = time.perf_counter()
    results.append(writer.call(fn).result(60))
    return (time.perf_counter() - started) * 1000


def summary(ms: list[float]) -> dict:
    if not ms:
        return {"steps": 0}
    ordered = sorted(ms)
    return {"steps": len(ms), "median_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "max_ms": round(ordered[-1], 1)}


def run_steps(writer: Writer, step: Callable[..., Step]) -> tuple[dict, int]:
    ms, results = [], []
    while True:
        took = timed(writer, step, results)
        if not results[-1].more:
            break
        ms.append(took)
    return summary(ms), sum(r.traces for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--sync", choices=["full", "normal"], default="full")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prune.db"
        clock = [NOW]
        writer = Writer(open_writer(path, synchronous=args.sync.upper()),
                        clock=lambda: clock[0])
        writer.start()
        try:
            started = time.perf_counter()
            build(writer, clock, args.spans, args.seed)
            build_s = time.perf_counter() - started
            size_before = file_bytes(path)

            by_age, aged = run_steps(writer, lambda c: prune_by_age(c, NOW - 7 * DAY, NOW))
            live, _ = writer.call(page_sizes).result(60)
            by_size, sized = run_steps(writer, lambda c: prune_by_size(c, live // 2, NOW))

            vacuum_ms, freed = [], []
            while True:
                took = timed(writer, lambda c: vacuum_step(c, 2**40), freed)
                if not freed[-1]:
                    break
                vacuum_ms.append(took)
        finally:
            writer.close()
        size_after = file_bytes(path)
    print(json.dumps({
        "benchmark": "prune",
        "spans": args.spans,
        "sync": args.sync,
        "build_s": round(build_s, 1),
        "spans_per_step": SPANS_PER_STEP,
        "age_step": {**by_age, "traces": aged},
        "size_step": {**by_size, "traces": sized},
        "vacuum_step": {**summary(vacuum_ms), "pages_per_step": VACUUM_PAGES_PER_STEP,
                        "freed_mb": round(sum(freed) / 1e6, 1)},
        "file_mb_before": round(size_before / 1e6, 1),
        "file_mb_after": round(size_after / 1e6, 1),
    }))


if __name__ == "__main__":
    main()
