"""Forwarding: everything received, sent on to an upstream OTLP collector or backend.

The receiver hands each request's body to ``Forwarder.submit`` once it decoded and its rows
are committed; the body is forwarded as the client sent it (agenttop redacts what it stores,
not what it forwards). ``submit`` never waits and never fails: bodies wait in a queue
bounded in bytes that drops the oldest when full, and one sender task drains it, so a slow
or absent upstream never slows local ingest.

The sender joins consecutive bodies of one signal into one request, up to
``MAX_SEND_BYTES``: an Export request holds a single repeated field, so protobuf reads
concatenated requests as one request with all their items. A failed send is retried with
exponential backoff and jitter (or after the delay the upstream asks for, through gRPC
RetryInfo or HTTP Retry-After) until it succeeds; answers that retrying cannot fix
(INVALID_ARGUMENT, UNAUTHENTICATED, HTTP 400, ...) count the bodies as failed instead, as
the OTLP specification prescribes for exporters.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import aiohttp
import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from agenttop import __version__
from agenttop.config import ForwardTarget
from agenttop.otlp.grpc_server import SERVICES
from agenttop.otlp.otlp_json import parse_request

log = logging.getLogger(__name__)

USER_AGENT = f"agenttop/{__version__}"
MAX_SEND_BYTES = 1024 * 1024  # one forwarded request; a larger body is sent alone
SEND_TIMEOUT_S = 10.0
FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0
MAX_ASKED_DELAY_S = 60.0  # the longest RetryInfo / Retry-After delay honoured
WARN_EVERY_S = 30.0  # at most one "failing" line (and one "refused" line) this often
FLUSH_GRACE_S = 5.0  # on stop, how long a healthy upstream gets to take the rest



# --- outcomes of one send ------------------------------------------------------------------

@dataclass(frozen=True)
class Sent:
    pass


@dataclass(frozen=True)
class Retry:
    error: str
    delay_s: float | None = None  # what the upstream asked for, if it did


@dataclass(frozen=True)
class Refused:
    """A permanent failure: sending the same bytes again would fail the same way."""

    error: str


Outcome = Sent | Retry | Refused


# --- OTLP/gRPC -------------------------------------------------------------------------------

# Retryable per the OTLP specification; RESOURCE_EXHAUSTED only when the server says when.
_GRPC_RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})


def retry_info_delay(metadata: object) -> float | None:
    """The RetryInfo delay in a call's trailing metadata, in seconds, or None.

    Looked for in the standard ``grpc-status-details-bin`` status and in the
    ``google.rpc.retryinfo-bin`` trailer.
    """
    for key, value in metadata or ():
        try:
            if key == "google.rpc.retryinfo-bin":
                return error_details_pb2.RetryInfo.FromString(value).retry_delay.ToTimedelta() \
                    .total_seconds()
            if key == "grpc-status-details-bin":
                for detail in status_pb2.Status.FromString(value).details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        return info.retry_delay.ToTimedelta().total_seconds()
        except (DecodeError, TypeError):
            continue
    return None


class GrpcTransport:
    """OTLP/gRPC: raw bytes in and out, on one channel."""

    def __init__(self, target: ForwardTarget, headers: tuple[tuple[str, str], ...]) -> None:
        options = [
            ("grpc.primary_user_agent", USER_AGENT),
            # gRPC's own reconnect backoff reaches two minutes; ours decides when to try.
            ("grpc.initial_reconnect_backoff_ms", int(FIRST_BACKOFF_S * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(FIRST_BACKOFF_S * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(MAX_BACKOFF_S * 1000)),
        ]
        if target.scheme == "grpcs":
            self._channel = grpc.aio.secure_channel(target.address, grpc.ssl_channel_credentials(),
                                                    options)
        else:
            self._channel = grpc.aio.insecure_channel(target.address, options)
        # No serializers: the bodies are already encoded requests.
        self._calls = {signal.name: self._channel.unary_unary(f"/{service}/Export")
                       for service, signal in SERVICES.items()}
        self._metadata = headers

    async def send(self, signal: str, body: bytes) -> Outcome:
        try:
            await self._calls[signal](body, metadata=self._metadata, timeout=SEND_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            error = f"{e.code().name}: {e.details() or 'no details'}"
            delay = retry_info_delay(e.trailing_metadata())
            if e.code() in _GRPC_RETRYABLE or (
                    e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                return Retry(error, delay)
            return Refused(error)
        return Sent()

    async def close(self) -> None:
        await self._channel.close()


# --- OTLP/HTTP -------------------------------------------------------------------------------

_HTTP_RETRYABLE = frozenset({429, 502, 503, 504})


def retry_after_delay(value: str | None, now_s: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) in seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


class HttpTransport:
    """OTLP/HTTP with protobuf bodies: POST {prefix}/v1/traces and so on."""

    def __init__(self, target: ForwardTarget, headers: tuple[tuple[str, str], ...]) -> None:
        self._base = target.url
        self._headers = {**dict(headers), "content-type": "application/x-protobuf",
                         "user-agent": USER_AGENT}
        self._session = None  # made on first use: it belongs to the running event loop

    async def send(self, signal: str, body: bytes) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S))
        try:
            async with self._session.post(f"{self._base}/v1/{signal}", data=body,
                                          headers=self._headers) as response:
                if 200 <= response.status < 300:
                    await response.read()
                    return Sent()
                error = f"HTTP {response.status} {response.reason or ''}".rstrip()
                if response.status in _HTTP_RETRYABLE:
                    return Retry(error, retry_after_delay(response.headers.get("Retry-After")))
                return Refused(error)
        except (aiohttp.ClientError, TimeoutError) as e:
            return Retry(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def transport_for(target: ForwardTarget,
                  headers: tuple[tuple[str, str], ...]) -> GrpcTransport | HttpTransport:
    if target.scheme.startswith("grpc"):
        return GrpcTransport(target, headers)
    return HttpTransport(target, headers)


# --- the queue and its sender ----------------------------------------------------------------

class _Body(NamedTuple):
    signal: str
    data: bytes
    json: bool  # OTLP/JSON, turned into protobuf before it is sent
    gzipped: bool


def _protobuf(bodies: list[_Body]) -> list[bytes]:
    """The bodies as uncompressed protobuf requests (each decoded fine once already)."""
    parts = []
    for body in bodies:
        data = gzip.decompress(body.data) if body.gzipped else body.data
        parts.append(parse_request(body.signal, data) if body.json else data)
    return parts


class Forwarder:
    """A bounded queue of bodies and the task that sends them upstream.

    ``submit`` and ``status`` are called on the event loop the forwarder was started on.
    Counts are of requests as received (before joining).
    """

    def __init__(self, target: ForwardTarget, headers: tuple[tuple[str, str], ...] = (), *,
                 max_queue_bytes: int) -> None:
        self.target = target
        self.max_queue_bytes = max_queue_bytes
        self._transport = transport_for(target, headers)
        self._queue: deque[_Body] = deque()
        self._queued_bytes = 0
        self._in_flight: list[_Body] = []  # taken from the queue, not yet sent or given up
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self.sent = self.failed = self.dropped = 0
        self.failing = False  # the last attempt failed and will be retried
        self.attempted = False
        self.last_error: str | None = None
        self.last_error_ns: int | None = None
        self._failing_since = 0.0
        self._announced = False  # a "failing" line was logged and no "recovered" yet
        self._last_failing_log = self._last_refused_log = -WARN_EVERY_S
        self._refused_unlogged = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def submit(self, signal: str, body: bytes, *, json: bool = False,
               gzipped: bool = False) -> None:
        """Queue one request body as received (protobuf unless ``json``, gzip-compressed
        if ``gzipped``); drops the oldest queued bodies if it does not fit."""
        size = len(body)
        if size > self.max_queue_bytes:
            self.dropped += 1
            return
        while self._queued_bytes + size > self.max_queue_bytes:
            self._queued_bytes -= len(self._queue.popleft().data)
            self.dropped += 1
        self._queue.append(_Body(signal, body, json, gzipped))
        self._queued_bytes += size
        self._idle.clear()
        self._wake.set()

    def status(self) -> dict:
        """``status["forward"]`` of the receiver row (see agenttop/store/status.py)."""
        state = "retrying" if self.failing else "ok" if self.attempted else "idle"
        return {
            "url": self.target.url, "state": state,
            "queued": len(self._queue) + len(self._in_flight),
            "queued_bytes": self._queued_bytes + sum(len(b.data) for b in self._in_flight),
            "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
            "last_error": self.last_error, "last_error_ns": self.last_error_ns,
        }

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued is sent or given up; False if time ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Give a healthy upstream a few seconds to take what is queued, then stop."""
        if self._task is not None and not self.failing:
            await self.flush(FLUSH_GRACE_S)
        left = len(self._queue) + len(self._in_flight)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._transport.close()
        if left:
            log.warning("forwarding to %s: %d requests not sent before stopping",
                        self.target.url, left)

    def _take(self) -> list[_Body]:
        """The oldest bodies of one signal, up to MAX_SEND_BYTES (at least one); a gzipped
        one alone, since its size once inflated is not known."""
        first = self._queue.popleft()
        taken, size = [first], len(first.data)
        while self._queue and not first.gzipped and self._queue[0].signal == first.signal \
                and not self._queue[0].gzipped \
                and size + len(self._queue[0].data) <= MAX_SEND_BYTES:
            taken.append(self._queue.popleft())
            size += len(taken[-1].data)
        self._queued_bytes -= size
        return taken

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            taken = self._in_flight = self._take()
            try:
                await self._deliver(taken)
            except Exception as e:  # a bug must cost these bodies, never forwarding itself
                log.exception("forwarding to %s failed", self.target.url)
                self._error(f"{type(e).__name__}: {e}")
                self.failed += len(taken)
            finally:
                self._in_flight = []

    async def _deliver(self, taken: list[_Body]) -> None:
        """Send the bodies as one request until it is taken or refused for good."""
        if any(b.json or b.gzipped for b in taken):
            parts = await asyncio.to_thread(_protobuf, taken)
        else:
            parts = [b.data for b in taken]
        signal, body, count = taken[0].signal, b"".join(parts), len(taken)
        attempt = 0
        while True:
            outcome = await self._transport.send(signal, body)
            self.attempted = True
            if isinstance(outcome, Sent):
                self.sent += count
                self._recovered()
                return
            self._error(outcome.error)
            if isinstance(outcome, Refused):
                self.failed += count
                self._refused(count)
                self._recovered()
                return
            self._failing()
            await asyncio.sleep(self._backoff(attempt, outcome.delay_s))
            attempt += 1

    def _backoff(self, attempt: int, asked_s: float | None) -> float:
        if asked_s is not None:
            return min(max(asked_s, 0.0), MAX_ASKED_DELAY_S)
        ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)

    def _error(self, error: str) -> None:
        self.last_error = error[:300]
        self.last_error_ns = time.time_ns()

    def _failing(self) -> None:
        now = time.monotonic()
        if not self.failing:
            self.failing = True
            self._failing_since = now
            if now - self._last_failing_log >= WARN_EVERY_S:
                self._last_failing_log = now
                self._announced = True
                log.warning("forwarding to %s is failing (%s); retrying, keeping up to %d MiB "
                            "in memory meanwhile", self.target.url, self.last_error,
                            self.max_queue_bytes // (1024 * 1024))

    def _recovered(self) -> None:
        if self.failing and self._announced:
            log.warning("forwarding to %s recovered after %.0f s", self.target.url,
                        time.monotonic() - self._failing_since)
            self._announced = False
        self.failing = False

    def _refused(self, count: int) -> None:
        self._refused_unlogged += count
        now = time.monotonic()
        if now - self._last_refused_log >= WARN_EVERY_S:
            self._last_refused_log = now
            log.warning("forwarding to %s: the upstream refused %d requests for good (%s)",
                        self.target.url, self._refused_unlogged, self.last_error)
            self._refused_unlogged = 0
