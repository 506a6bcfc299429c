"""Ingest throughput of `agenttop serve`, committed and acknowledged, against a bare loop.

Starts `agenttop serve` in a subprocess on a free loopback port, sends pre-serialised
agent-shaped 500-span requests from concurrent clients over OTLP/gRPC or OTLP/HTTP
(``--transport``), waits until every span is committed, and in the same run times a bare
in-process decode+convert+insert loop over the same requests. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil
from agent_shapes import trace_request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttop.otlp.convert import spans_batch
from agenttop.store import open_writer
from agenttop.store.writer import Writer

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_requests(count: int, spans: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    base = 1_700_000_000 * 10**9
    return [
        trace_request(rng, spans, start_ns=base + i * 10**12).SerializeToString()
        for i in range(count)
    ]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited early: {proc.stderr.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("serve did not start listening")


def client(port: int, requests: list[bytes], acked: list[int], errors: list[str]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(EXPORT)
        for body in requests:
            for _attempt in range(100):
                try:
                    export(body, timeout=60)
                    acked.append(1)
                    break
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        errors.append(f"{e.code().name}: {e.details()}")
                        break
                    time.sleep(0.05)


def http_client(port: int, requests: list[bytes], acked: list[int], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf"}
    try:
        for body in requests:
            for _attempt in range(100):
                conn.request("POST", "/v1/traces", body, headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status == 200:
                    acked.append(1)
                    break
                if response.status != 503:
                    errors.append(f"HTTP {response.status}: {answer[:200]!r}")
                    break
                time.sleep(0.05)
    finally:
        conn.close()


def tree_rss(process: psutil.Process) -> int:
    """RSS of the receiver and its decoding workers."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def count_spans(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    finally:
        conn.close()


def run_server(requests: list[bytes], clients: int, spans: int, sync: str, tmp: Path,
               transport: str) -> dict:
    db = tmp / "serve.db"
    port = free_port()
    if transport == "http":
        grpc_port, send = free_port(), http_client
        http_option = f"127.0.0.1:{port}"
    else:
        grpc_port, send, http_option = port, client, "off"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db),
         "--grpc", f"127.0.0.1:{grpc_port}", "--http", http_option, "--sync", sync],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port, proc)
        ps = psutil.Process(proc.pid)
        peak_rss = tree_rss(ps)
        shares = [requests[i::clients] for i in range(clients)]
        acked: list[int] = []
        errors: list[str] = []
        threads = [
            threading.Thread(target=send, args=(port, share, acked, errors)) for share in shares
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak_rss = max(peak_rss, tree_rss(ps))
            time.sleep(0.05)
        acked_s = time.perf_counter() - start
        total = len(requests) * spans
        while count_spans(db) < total and time.perf_counter() - start < acked_s + 30:
            time.sleep(0.01)
        committed_s = time.perf_counter() - start
        stored = count_spans(db)
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "acked_spans_per_s": round(len(acked) * spans / acked_s),
        "committed_spans_per_s": round(stored / committed_s),
        "stored": stored,
        "expected": total,
        "errors": errors[:3],
        "peak_receiver_rss_mb": round(peak_rss / 2**20, 1),
    }


def run_bare(requests: list[bytes], sync: str, tmp: Path) -> float:
    writer = Writer(open_writer(tmp / "bare.db", synchronous=sync.upper()))
    start = time.perf_counter()
    spans = 0
    for body in requests:
        batch = spans_batch(ExportTraceServiceRequest.FromString(body), time.time_ns())
        writer._write([batch])
        spans += batch.size
    elapsed = time.perf_counter() - start
    writer.close()
    return spans / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=240, help="requests in all")
    parser.add_argument("--spans", type=int, default=500, help="spans per request")
    parser.add_argument("--sync", choices=["full", "normal"], default="full")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--transport", choices=["grpc", "http"], default="grpc",
                        help="OTLP/gRPC, or OTLP/HTTP with protobuf bodies")
    args = parser.parse_args()
    requests = build_requests(args.requests, args.spans, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        served = run_server(requests, args.clients, args.spans, args.sync, Path(tmp),
                            args.transport)
        bare = run_bare(requests, args.sync, Path(tmp))
    print(json.dumps({
        "benchmark": "ingest",
        "transport": args.transport,
        "clients": args.clients,
        "spans_per_request": args.spans,
        "sync": args.sync,
        **served,
        "bare_loop_spans_per_s": round(bare),
        "ratio": round(served["committed_spans_per_s"] / bare, 2),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
