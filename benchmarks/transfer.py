"""The readiness scorecard, ``export`` and ``import`` on a big file.

Builds a database through the real decoder and writer (as ``benchmarks/health.py`` does),
then times, on that file:

- the scorecard (``build_scorecard``: the few full scans it needs over spans and logs);
- exporting the newest ``--export-traces`` traces to OTLP/JSON lines (one request per
  trace, as ``agenttop export`` writes them), and importing that file into an empty
  database through ``Importer`` (the receiver's decode and writer path).

Prints one JSON line.

    python benchmarks/transfer.py [--spans 1000000] [--export-traces 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import orjson
from health import build

from agenttop.analysis.rules import load_rules
from agenttop.analysis.scorecard import build_scorecard
from agenttop.otlp.export import logs_request, trace_request
from agenttop.otlp.importer import Importer
from agenttop.otlp.otlp_json import to_json
from agenttop.store import open_reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--export-traces", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="processes building and decoding requests")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agenttop-transfer-") as tmp:
        path = Path(tmp) / "big.db"
        built = build(path, args.spans, 20, args.seed, args.workers)
        conn = open_reader(path)
        try:
            started = time.perf_counter()
            card = build_scorecard(conn, load_rules(None))
            scorecard_s = time.perf_counter() - started

            ids = [row[0] for row in conn.execute(
                "SELECT trace_id FROM traces ORDER BY start_ns DESC LIMIT ?",
                (args.export_traces,))]
            started = time.perf_counter()
            lines = []
            for trace_id in ids:
                lines.append(orjson.dumps(to_json(trace_request(conn, [trace_id]))))
                logs = logs_request(conn, [trace_id])
                if logs.resource_logs:
                    lines.append(orjson.dumps(to_json(logs)))
            dump = b"\n".join(lines) + b"\n"
            export_s = time.perf_counter() - started
        finally:
            conn.close()
        importer = Importer(Path(tmp) / "copy.db")
        started = time.perf_counter()
        result = importer.load(io.BytesIO(dump), "export.jsonl")
        problem = importer.close()
        import_s = time.perf_counter() - started
    assert not result.errors and problem is None, (result.errors, problem)
    print(json.dumps({
        "benchmark": "transfer",
        **built,
        "scorecard_s": round(scorecard_s, 3),
        "scorecard_ready": card.ready,
        "exported_traces": len(ids),
        "exported_spans": result.spans,
        "export_s": round(export_s, 3),
        "export_spans_per_s": round(result.spans / export_s),
        "import_s": round(import_s, 3),
        "import_spans_per_s": round(result.spans / import_s),
        "export_mb": round(len(dump) / 2**20, 1),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
