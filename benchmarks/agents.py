"""The agents screen's refresh on a big file, per window.

Builds a database of ``--spans`` spans (default 1,000,000: 100,000 ten-span traces of 50
agents calling 500 tools and 20 models, spread over the 20 minutes before a fixed now)
through the real decoder and writer, as ``benchmarks/health.py`` does, then times (median
of runs) what one refresh of the agents screen does for each window, 1m to 1h: read the
call rollups and make the agents, tools and models rows, with the latencies of the rows
on screen (20 per table).

Prints one JSON line. Target: a refresh <= 50 ms.

    python benchmarks/agents.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from health import NOW, build
from ui import timed

from agenttop.store import open_reader
from agenttop.store.calls import KINDS
from agenttop.store.db import scalar
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.tui.screens.agents import WINDOWS_S, TableView, table_rows

# As the screen opens on a 200x60 terminal: each table by its first figure, biggest first,
# about 15 rows of each on screen, and the margin below them.
VIEWS = {kind: TableView("runs" if kind == "agent" else "calls", True, 20) for kind in KINDS}


def refresh(conn: object, window_s: int) -> tuple[int, ...]:
    _, rows = table_rows(conn, (NOW - window_s * SECOND_NS) // MINUTE_NS, NOW // MINUTE_NS,
                         VIEWS)
    return tuple(len(rows[kind]) for kind in KINDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agents.db"
        built = build(path, args.spans, 0, args.seed, max(1, (os.cpu_count() or 2) - 1))
        conn = open_reader(path)
        try:
            rows = scalar(conn, "SELECT count(*) FROM call_minutes")
            pending = scalar(conn, "SELECT count(*) FROM pending_calls")
            agents, tools, models = refresh(conn, 3600)
            refresh_ms = {f"{w // 60}m": timed(lambda w=w: refresh(conn, w), args.runs)
                          for w in WINDOWS_S}
        finally:
            conn.close()
    print(json.dumps({
        "benchmark": "agents", "spans": built["spans"], "build_s": built["build_s"],
        "db_mb": built["db_mb"], "call_rollup_rows": rows, "pending_calls": pending,
        "agents": agents, "tools": tools, "models": models, "refresh_ms": refresh_ms,
        "target_ms": 50, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
