"""What `serve --forward` costs local ingest, and how fast an upstream agenttop catches up.

Runs `agenttop serve` A in a subprocess three times with the same agent-shaped 500-span
requests from concurrent OTLP/gRPC clients: without forwarding, forwarding to a port where
nobody listens (the queue fills, retries and drops: the hook alone), and forwarding to a
second `agenttop serve` B. For each, A's committed-and-acked spans per second; for the last,
also the seconds until B holds every span. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ingest import build_requests, client, count_spans, free_port, wait_for_port


def serve(db: Path, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db),
         "--grpc", f"127.0.0.1:{port}", "--http", "off", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_port(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def ingest(requests: list[bytes], clients: int, spans: int, db: Path, extra: list[str],
           upstream_db: Path | None = None) -> dict:
    port = free_port()
    proc = serve(db, port, *extra)
    try:
        acked: list[int] = []
        errors: list[str] = []
        threads = [threading.Thread(target=client, args=(port, requests[i::clients], acked,
                                                         errors)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked_s = time.perf_counter() - start
        result = {"spans_per_s": round(len(acked) * spans / acked_s), "errors": errors[:3]}
        if upstream_db is not None:
            total = len(requests) * spans
            while count_spans(upstream_db) < total and time.perf_counter() - start < 300:
                time.sleep(0.05)
            result["upstream_stored"] = count_spans(upstream_db)
            result["upstream_caught_up_s"] = round(time.perf_counter() - start, 2)
    finally:
        stop(proc)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=120, help="requests in all")
    parser.add_argument("--spans", type=int, default=500, help="spans per request")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    requests = build_requests(args.requests, args.spans, args.seed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run = [requests, args.clients, args.spans]
        off = ingest(*run, tmp / "off.db", [])
        nowhere = ingest(*run, tmp / "nowhere.db",
                         ["--forward", f"grpc://127.0.0.1:{free_port()}"])
        b_port = free_port()
        b = serve(tmp / "b.db", b_port)
        try:
            to_b = ingest(*run, tmp / "a.db", ["--forward", f"grpc://127.0.0.1:{b_port}"],
                          upstream_db=tmp / "b.db")
        finally:
            stop(b)
    print(json.dumps({
        "benchmark": "forward",
        "clients": args.clients,
        "spans_per_request": args.spans,
        "expected": len(requests) * args.spans,
        "no_forward_spans_per_s": off["spans_per_s"],
        "forward_unreachable_spans_per_s": nowhere["spans_per_s"],
        "forward_to_agenttop_spans_per_s": to_b["spans_per_s"],
        "upstream_stored": to_b["upstream_stored"],
        "upstream_caught_up_s": to_b["upstream_caught_up_s"],
        "errors": off["errors"] + nowhere["errors"] + to_b["errors"],
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
