"""Decoding OTLP request bodies into batches, in worker processes.

Decoding and conversion are pure Python over protobuf objects and hold the GIL for most of
their time; in the receiver's own process they would compete with the event loop and with
the writer thread, whose SQLite work otherwise runs in parallel. Worker processes take the
raw request bytes (protobuf or OTLP/JSON, gzip or not) and return encoded ``Batch``es, so
the receiver process keeps one core for the servers and the writer, and decoding scales
with the cores there are.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import multiprocessing.connection
import os
import threading
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttop.analysis.cost import DEFAULT_PRICES, PriceBook
from agenttop.otlp.convert import MAX_VALUE_BYTES, logs_batch, metrics_batch, spans_batch
from agenttop.otlp.otlp_json import read_request
from agenttop.store.redaction import DEFAULT_POLICY, ScanPolicy
from agenttop.store.rows import Batch

DECODERS = {
    "traces": (ExportTraceServiceRequest, spans_batch),
    "metrics": (ExportMetricsServiceRequest, metrics_batch),
    "logs": (ExportLogsServiceRequest, logs_batch),
}


class TooLarge(Exception):
    """A compressed body inflates past the size limit."""


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body (one or more members) of at most ``limit`` bytes; raises
    DecodeError when it is not gzip and TooLarge past the limit, before inflating more."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as e:
            raise DecodeError(f"not a valid gzip body ({e})") from None
        if len(out) > limit:
            raise TooLarge(f"the body inflates to more than {limit:,} bytes")
        if not inflater.eof:
            raise DecodeError("the gzip body is cut short")
        data = inflater.unused_data
    return bytes(out)


def decode(signal: str, data: bytes, received_ns: int, policy: ScanPolicy = DEFAULT_POLICY,
           max_value_bytes: int = MAX_VALUE_BYTES, *, json: bool = False,
           gunzip_max: int | None = None, prices: PriceBook = DEFAULT_PRICES) -> Batch:
    """Decode one Export request body; raises protobuf's DecodeError when it is not OTLP.

    ``policy`` says how text is scanned for PII and injection; strings longer
    than ``max_value_bytes`` are truncated (with a marker) before anything else sees them.
    ``json``: the body is OTLP/JSON, not protobuf. ``gunzip_max``: the body is gzip, to be
    inflated to at most that many bytes (else TooLarge). ``prices``: what model calls cost.
    """
    if gunzip_max is not None:
        data = gunzip(data, gunzip_max)
    request_type, convert = DECODERS[signal]
    if json:
        try:
            request = read_request(signal, data)
        except ValueError as e:
            raise DecodeError(str(e)) from None
    else:
        request = request_type.FromString(data)
    if signal == "metrics":
        return convert(request, received_ns, max_value_bytes)
    if signal == "traces":
        return convert(request, received_ns, policy, max_value_bytes, prices)
    return convert(request, received_ns, policy, max_value_bytes)


def default_workers() -> int:
    # One core is left for the writer and the event loop; two workers keep a second request
    # decoding while the first one's result travels back.
    return max(1, min(4, (os.cpu_count() or 2) - 1, 2))


def _exit_with_parent() -> None:
    """In each worker: exit as soon as the receiver is gone, however it went.

    A receiver killed outright (kill -9, the OOM killer) runs no clean-up, and its workers
    would wait for work forever.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="agenttop-parent-watch", daemon=True).start()


class DecoderLost(Exception):
    """A worker process died while decoding (the pool is replaced; the client may retry)."""


class DecoderStartError(Exception):
    """The worker processes could not be started; the message says why, in one line."""


class DecoderPool:
    """Worker processes for ``decode``, replaced if one of them dies."""

    def __init__(self, workers: int | None = None, *, policy: ScanPolicy = DEFAULT_POLICY,
                 max_value_bytes: int = MAX_VALUE_BYTES,
                 prices: PriceBook = DEFAULT_PRICES) -> None:
        self.workers = workers or default_workers()
        self.policy = policy
        self.prices = prices
        self.max_value_bytes = max_value_bytes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs gRPC's threads, which do not survive a fork.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_exit_with_parent)

    def warm_up(self) -> None:
        """Start every worker now, so the first Export does not wait for process start-up.

        Raises ``DecoderStartError`` when they cannot start (no processes left to the user,
        no memory, a broken installation)."""
        try:
            futures = [self._pool.submit(decode, "traces", b"", 0) for _ in range(self.workers)]
            for future in futures:
                future.result(timeout=60)
        except (BrokenProcessPool, OSError, TimeoutError) as e:
            self._pool.shutdown(wait=False, cancel_futures=True)
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DecoderStartError(f"cannot start {self.workers} decoding worker processes "
                                    f"(--decoders): {why}") from None

    async def decode(self, signal: str, data: bytes, received_ns: int, *, json: bool = False,
                     gunzip_max: int | None = None) -> Batch:
        pool = self._pool
        loop = asyncio.get_running_loop()
        call = functools.partial(decode, signal, data, received_ns, self.policy,
                                 self.max_value_bytes, json=json, gunzip_max=gunzip_max,
                                 prices=self.prices)
        try:
            return await loop.run_in_executor(pool, call)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise DecoderLost from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
