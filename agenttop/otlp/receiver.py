"""What every OTLP transport shares: the token check, decoding, admission to the writer,
waiting for the commit, and the Export response with its partial success.

A transport (gRPC in ``grpc_server``, HTTP in ``http_server``) hands ``Receiver`` the
caller's address, its ``authorization`` value and the request body, and turns the response
message it gets back, or the ``Refused`` raised instead, into its own wire form. Each body
is decoded in a worker process, handed to the writer, and answered only once its rows are
committed. When the writer's queue is full the refusal carries a retry delay, which OTLP
exporters honour by backing off and sending again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from agenttop.otlp import audit
from agenttop.otlp.audit import AuditLog
from agenttop.otlp.budget import BodyBudget
from agenttop.otlp.decode import DecoderLost, DecoderPool, TooLarge
from agenttop.store.rows import Batch
from agenttop.store.writer import Writer

MIN_RETRY_S, MAX_RETRY_S = 0.05, 5.0
BODY_TIMEOUT_S = 5.0  # a call's body must arrive within this (serve --body-timeout)
T = TypeVar("T")
OVERLOADED = "agenttop is busy writing; retry later"
BODIES_FULL = "agenttop holds as many request bodies as it may; retry later"
STORE_FAILED = "agenttop could not write to its database; retry later"
DECODER_LOST = "agenttop lost a decoding worker; retry later"
UNAUTHENTICATED = "agenttop requires 'authorization: Bearer <token>' with the right token"

# Why an Export was refused (``Refused.reason``); each transport has its status for each.
NOT_AUTHENTICATED = "unauthenticated"
MALFORMED = "malformed"
TOO_LARGE = "too large"
BUSY = "busy"  # nothing wrong with the request: send it again after ``retry_after_s``
SLOW = "slow"  # the body did not arrive in time


class Refused(Exception):
    """The Export is not taken; nothing of it was stored."""

    def __init__(self, reason: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s


class BindError(Exception):
    """A listening address cannot be bound; the message says which and why."""


class Signal(NamedTuple):
    """How one OTLP signal is answered (decoding is in ``agenttop.otlp.decode``)."""

    name: str
    response: Any  # the Export...ServiceResponse message type
    rejected_field: str  # its partial_success counter

    def respond(self, batch: Batch) -> Message:
        response = self.response()
        if batch.rejected:
            setattr(response.partial_success, self.rejected_field, batch.rejected)
            response.partial_success.error_message = batch.error_message
        return response


SIGNALS = {
    "traces": Signal("traces", trace_pb.ExportTraceServiceResponse, "rejected_spans"),
    "metrics": Signal("metrics", metrics_pb.ExportMetricsServiceResponse,
                      "rejected_data_points"),
    "logs": Signal("logs", logs_pb.ExportLogsServiceResponse, "rejected_log_records"),
}


class Receiver:
    """Takes Export requests for every transport: decode in a ``DecoderPool``, write through
    one ``Writer``. Runs on the event loop of the servers that call it."""

    def __init__(
        self, writer: Writer, decoders: DecoderPool, clock: Callable[[], int] = time.time_ns,
        *, budget: BodyBudget, token: str | None = None, audit_log: AuditLog | None = None,
        forward: Callable[..., None] | None = None, body_timeout_s: float = BODY_TIMEOUT_S,
    ) -> None:
        self.writer = writer
        self.body_timeout_s = body_timeout_s
        # Forwarder.submit (agenttop/otlp/forward.py): every body stored, sent on upstream.
        self.forward = forward
        self.decoders = decoders
        self.budget = budget
        self.clock = clock
        self.audit = audit_log
        self._token = BearerToken(token) if token else None
        self.unauthenticated = 0  # calls refused for a missing or wrong token
        self.malformed = 0  # calls refused as undecodable
        self.too_large = 0  # calls refused for a body over the size limit
        self.skewed = 0  # items stored with a time ahead of their arrival, or before 2000
        self.slow = 0  # calls whose body did not arrive within body_timeout_s

    def refuse_too_large(self, signal: Signal, peer: str, message: str) -> Refused:
        """Count and audit a body over the size limit; the ``Refused`` to raise."""
        self.too_large += 1
        self._refuse(peer, signal.name, audit.TOO_LARGE)
        return Refused(TOO_LARGE, message)

    def refuse_unparsable(self, peer: str) -> None:
        """Count and audit an HTTP request too malformed to say what it carried."""
        self.malformed += 1
        self._refuse(peer, "http", audit.MALFORMED)

    def _refuse(self, peer: str, what: str, reason: str) -> None:
        """Audit a refused call: ``what`` is the signal it carried, or the transport when
        that could not be told."""
        if self.audit is not None:
            self.audit.record(peer, what, reason)

    def authenticate(self, signal: Signal, peer: str, authorization: str | None) -> None:
        """Raise ``Refused`` (and audit it) unless the credentials carry the token, if one
        is required. ``authorization`` is the value of the call's ``authorization``
        metadata or header, None when it has none."""
        if self._token is None:
            return
        if authorization is None:
            problem = audit.MISSING_TOKEN
        else:
            problem = None if self._token.matches(authorization) else audit.WRONG_TOKEN
        if problem is not None:
            self.unauthenticated += 1
            self._refuse(peer, signal.name, problem)
            raise Refused(NOT_AUTHENTICATED, UNAUTHENTICATED)

    async def admit(self, size: int | None = None) -> int:
        """Room in the body budget for a call whose body is not read yet (``size`` when
        the transport says it beforehand): its charge, for ``budget.resize`` once read and
        ``budget.release`` once answered. Raises ``Refused`` when the budget stays spent."""
        charge = await self.budget.admit(size)
        if charge is None:
            raise Refused(BUSY, BODIES_FULL, self.retry_delay())
        return charge

    async def read_body(self, read: Awaitable[T], signal: Signal, peer: str) -> T:
        """``read`` (the call's body), or ``Refused`` once ``body_timeout_s`` has passed: a
        client that opens a call and sends nothing, or trickles, gives its share of the
        body budget back to the others."""
        try:
            return await asyncio.wait_for(read, self.body_timeout_s)
        except TimeoutError:
            self.slow += 1
            self._refuse(peer, signal.name, audit.SLOW)
            raise Refused(SLOW, f"the request body did not arrive within "
                                f"{self.body_timeout_s:g} s") from None

    def retry_delay(self) -> float:
        """How long a refused client should wait: about the time to drain the backlog.

        Exporters retry after exactly the delay they are given, so a random spread keeps
        refused clients from all coming back at the same instant.
        """
        drain = self.writer.drain_seconds() * random.uniform(1.0, 2.0)
        return min(MAX_RETRY_S, max(MIN_RETRY_S, drain))

    async def export(self, signal: Signal, body: bytes, peer: str, *, json: bool = False,
                     gunzip_max: int | None = None) -> Message:
        """Decode, store and commit one authenticated request body; returns the response.

        ``json``: the body is OTLP/JSON; ``gunzip_max``: it is gzip-compressed and may
        inflate to at most that many bytes. Raises ``Refused``.
        """
        try:
            batch = await self.decoders.decode(signal.name, body, self.clock(), json=json,
                                               gunzip_max=gunzip_max)
        except DecodeError as e:
            self.malformed += 1
            self._refuse(peer, signal.name, audit.MALFORMED)
            raise Refused(MALFORMED, f"cannot decode OTLP {signal.name}: {e}") from None
        except TooLarge as e:
            raise self.refuse_too_large(signal, peer, str(e)) from None
        except DecoderLost:
            raise Refused(BUSY, DECODER_LOST, MIN_RETRY_S) from None
        if batch.size:
            loop = asyncio.get_running_loop()
            committed: asyncio.Future[BaseException | None] = loop.create_future()

            def done(error: BaseException | None) -> None:
                loop.call_soon_threadsafe(_settle, committed, error)

            if not self.writer.try_submit(batch, done):
                raise Refused(BUSY, OVERLOADED, self.retry_delay())
            if await committed is not None:
                raise Refused(BUSY, STORE_FAILED, MAX_RETRY_S)
            self.skewed += batch.skewed
        if self.forward is not None:
            self.forward(signal.name, body, json=json, gzipped=gunzip_max is not None)
        return signal.respond(batch)


class BearerToken:
    """The token every call must carry as ``Bearer <token>``. Only a digest is kept:
    compared in constant time, and never printable."""

    def __init__(self, token: str) -> None:
        self._digest = _digest(token.encode())

    def matches(self, authorization: str | None) -> bool:
        scheme, _, credential = (authorization or "").strip().partition(" ")
        ok = hmac.compare_digest(_digest(credential.strip().encode()), self._digest)
        return ok and scheme.lower() == "bearer"


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)
