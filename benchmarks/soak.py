"""Sustained overload of `agenttop serve`: nothing acknowledged is lost or doubled, and the
receiver's memory stays bounded.

Starts `agenttop serve` (default settings) in a subprocess on a free loopback port. For
--duration seconds, --clients clients with --concurrency calls in flight each offer
agent-shaped 500-span requests at up to --rate spans/s: by default about twice what the
receiver commits on the 2-core development machine, so its writer queue fills and calls are
refused with UNAVAILABLE. A refused call is sent again after the delay in its RetryInfo, as
OTLP exporters do. Then nothing new is sent, every request is resent until acknowledged,
the receiver stops, and the file is counted. The RSS of the receiver and its decoding
workers is sampled throughout. Prints one JSON line.

    python benchmarks/soak.py [--duration 300] [--rate 64000] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import psutil
from google.rpc import error_details_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_shapes import trace_request  # noqa: E402
from ingest import free_port, tree_rss, wait_for_port  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
DRAIN_TIMEOUT_S = 120.0


class Template:
    """One serialised request whose trace ids all start with the same 8 bytes, so a new
    request with fresh ids is one ``bytes.replace`` away (building 500 spans in Python
    for every request would make the load generator the bottleneck)."""

    def __init__(self, spans: int, seed: int) -> None:
        rng = random.Random(seed)
        while True:
            self.marker = rng.randbytes(8)
            request = trace_request(rng, spans, start_ns=time.time_ns())
            for s in request.resource_spans[0].scope_spans[0].spans:
                s.trace_id = self.marker + s.trace_id[8:]
            self.body = request.SerializeToString()
            if self.body.count(self.marker) == spans:  # the marker is nowhere else
                break
        self.spans = spans

    def request(self, nonce: bytes) -> bytes:
        return self.body.replace(self.marker, nonce)


class Pacer:
    """Hands out send slots at a fixed rate; slots nobody was free to take are not made up."""

    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(self.next_at, now)
        self.next_at = slot + self.interval
        await asyncio.sleep(slot - now)


class Load:
    """What the clients did: requests by nonce, retries by reason, failures."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acked: list[bytes] = []
        self.retries: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self.last_ack = 0.0


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "google.rpc.retryinfo-bin":
            delay = error_details_pb2.RetryInfo.FromString(value).retry_delay
            return delay.seconds + delay.nanos / 1e9
    return None


async def _caller(export, template: Template, nonces, pacer: Pacer, load: Load,
                  stop: asyncio.Event) -> None:
    while True:
        await pacer.wait()
        if stop.is_set():
            return
        nonce = next(nonces)
        body = template.request(nonce)
        load.sent.append(nonce)
        while True:  # until acknowledged: resending is what exporters do
            try:
                await export(body, timeout=60)
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED):
                    load.errors.append(f"{e.code().name}: {e.details()}")
                    break
                load.retries[e.details() or e.code().name] += 1
                await asyncio.sleep(_retry_delay(e) or 0.05)
                continue
            load.acked.append(nonce)
            load.last_ack = time.monotonic()
            break


async def _drive(port: int, template: Template, duration_s: float, rate: float, clients: int,
                 concurrency: int) -> tuple[Load, float]:
    load = Load()
    stop = asyncio.Event()
    pacer = Pacer(rate / template.spans)
    salt = random.getrandbits(62)
    nonces = ((salt + i).to_bytes(8, "big") for i in itertools.count())
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(clients)]
    start = time.monotonic()
    tasks = [asyncio.create_task(_caller(channel.unary_unary(EXPORT), template, nonces, pacer,
                                         load, stop))
             for channel in channels for _ in range(concurrency)]
    await asyncio.sleep(duration_s)
    stop.set()
    _, late = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
    for task in late:
        task.cancel()
    for channel in channels:
        await channel.close()
    if late:
        load.errors.append(f"{len(late)} requests still unacknowledged after the drain")
    return load, start


def _stored(db: Path) -> tuple[dict[bytes, int], int]:
    """Spans stored per request nonce, and rows beyond one per (trace_id, span_id)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        per_nonce = {bytes.fromhex(nonce): n for nonce, n in conn.execute(
            "SELECT substr(trace_id, 1, 16), count(*) FROM spans GROUP BY 1")}
        duplicates = conn.execute(
            "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id "
            "FROM spans)) FROM spans").fetchone()[0]
    finally:
        conn.close()
    return per_nonce, duplicates


def run(duration_s: float, rate: float, clients: int, concurrency: int, spans: int,
        workdir: Path, serve_args: Sequence[str] = (), seed: int = 11) -> dict:
    """One soak run; the figures printed by ``main``."""
    template = Template(spans, seed)
    db, port = workdir / "soak.db", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(db),
         "--grpc", f"127.0.0.1:{port}", "--http", "off", *serve_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    peak = [0]
    sampling = threading.Event()

    def sample(receiver: psutil.Process) -> None:
        while not sampling.wait(0.1):
            peak[0] = max(peak[0], tree_rss(receiver))

    try:
        wait_for_port(port, proc, timeout=60)
        sampler = threading.Thread(target=sample, args=(psutil.Process(proc.pid),))
        sampler.start()
        try:
            load, start = asyncio.run(_drive(port, template, duration_s, rate, clients,
                                             concurrency))
        finally:
            sampling.set()
            sampler.join()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            load.errors.append(f"serve exited with {proc.returncode}: {err.strip()[-300:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    per_nonce, duplicates = _stored(db)
    acked = set(load.acked)
    return {
        "sent": len(load.sent) * spans,
        "acked": len(acked) * spans,
        "stored": sum(per_nonce.values()),
        "lost": sum(spans - per_nonce.get(n, 0) for n in acked),
        "unexpected": sum(n for nonce, n in per_nonce.items() if nonce not in acked),
        "duplicates": duplicates,
        "retries": sum(load.retries.values()),
        "retry_reasons": dict(load.retries),
        "errors": load.errors[:3],
        "peak_rss_mb": round(peak[0] / 2**20, 1),
        "spans_per_s": round(len(acked) * spans / max(load.last_ack - start, 1e-9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--rate", type=float, default=64_000,
                        help="spans per second offered at most (measured capacity: ~32,000)")
    parser.add_argument("--clients", type=int, default=8, help="channels (connections)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight per client")
    parser.add_argument("--spans", type=int, default=500, help="spans per request")
    parser.add_argument("--serve-args", default="", metavar="ARGS",
                        help="more options for agenttop serve, e.g. '--max-inflight-mb 32'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args.duration, args.rate, args.clients, args.concurrency, args.spans,
                      Path(tmp), shlex.split(args.serve_args))
    print(json.dumps({
        "benchmark": "soak",
        "duration_s": args.duration,
        "offered_spans_per_s": args.rate,
        "clients": args.clients,
        "concurrency": args.concurrency,
        "spans_per_request": args.spans,
        "serve_args": args.serve_args,
        **figures,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
