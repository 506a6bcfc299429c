"""OTLP/gRPC: TraceService, MetricsService and LogsService on one asyncio gRPC server.

Requests arrive as raw bytes (no deserializer is registered) so that an undecodable body
is answered with INVALID_ARGUMENT by us, rather than with a generic error by the library.
Each Export is decoded in a worker process, handed to the writer, and answered only once
its rows are committed. When the writer's queue is full it answers UNAVAILABLE with a
RetryInfo detail, which OTLP exporters honour by backing off and sending again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from agenttop.otlp import audit
from agenttop.otlp.audit import AuditLog
from agenttop.otlp.convert import Batch
from agenttop.otlp.decode import DecoderLost, DecoderPool
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)

MIN_RETRY_S, MAX_RETRY_S = 0.05, 5.0
OVERLOADED = "agenttop is busy writing; retry later"
STORE_FAILED = "agenttop could not write to its database; retry later"
DECODER_LOST = "agenttop lost a decoding worker; retry later"
UNAUTHENTICATED = "agenttop requires 'authorization: Bearer <token>' metadata with the right token"


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def retry_status(message: str, delay_s: float) -> _Status:
    """UNAVAILABLE with a RetryInfo saying when to come back.

    The delay is carried twice: in the standard status details (read by the Collector and
    the Go and Java exporters) and in the ``google.rpc.retryinfo-bin`` trailer (the only
    place the Python exporter looks).
    """
    nanos = int(delay_s * 1e9)
    retry = error_details_pb2.RetryInfo(
        retry_delay=Duration(seconds=nanos // 10**9, nanos=nanos % 10**9)
    )
    detail = AnyProto()
    detail.Pack(retry)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    )
    metadata = (*status.trailing_metadata, ("google.rpc.retryinfo-bin", retry.SerializeToString()))
    return _Status(status.code, status.details, metadata)


class _Signal(NamedTuple):
    """How one OTLP signal is answered (decoding is in ``agenttop.otlp.decode``)."""

    name: str
    response: Any  # the Export...ServiceResponse message type
    rejected_field: str  # its partial_success counter

    def respond(self, batch: Batch) -> bytes:
        response = self.response()
        if batch.rejected:
            setattr(response.partial_success, self.rejected_field, batch.rejected)
            response.partial_success.error_message = batch.error_message
        return response.SerializeToString()


SIGNALS = {
    "opentelemetry.proto.collector.trace.v1.TraceService": _Signal(
        "traces", trace_pb.ExportTraceServiceResponse, "rejected_spans"),
    "opentelemetry.proto.collector.metrics.v1.MetricsService": _Signal(
        "metrics", metrics_pb.ExportMetricsServiceResponse, "rejected_data_points"),
    "opentelemetry.proto.collector.logs.v1.LogsService": _Signal(
        "logs", logs_pb.ExportLogsServiceResponse, "rejected_log_records"),
}


class Receiver:
    """The three OTLP services: decode in a ``DecoderPool``, write through one ``Writer``."""

    def __init__(
        self, writer: Writer, decoders: DecoderPool, clock: Callable[[], int] = time.time_ns,
        *, token: str | None = None, audit_log: AuditLog | None = None,
    ) -> None:
        self.writer = writer
        self.decoders = decoders
        self.clock = clock
        self.audit = audit_log
        # Only a digest is kept: compared in constant time, and never printable.
        self._token_digest = _digest(token.encode()) if token else None
        self.unauthenticated = 0  # calls refused for a missing or wrong token
        self.malformed = 0  # calls refused as undecodable

    def _refuse(self, signal: _Signal, context: grpc.aio.ServicerContext, reason: str) -> None:
        if self.audit is not None:
            self.audit.record(context.peer() or "", signal.name, reason)

    def _auth_problem(self, context: grpc.aio.ServicerContext) -> str | None:
        """Why the call's credentials are refused (an ``audit`` reason), or None."""
        presented = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                presented = value if isinstance(value, str) else value.decode("latin-1")
                break
        if presented is None:
            return audit.MISSING_TOKEN
        scheme, _, credential = presented.strip().partition(" ")
        ok = hmac.compare_digest(_digest(credential.strip().encode()), self._token_digest)
        return None if ok and scheme.lower() == "bearer" else audit.WRONG_TOKEN

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(self._handler(signal))}
            )
            for service, signal in SIGNALS.items()
        ]

    def retry_delay(self) -> float:
        """How long a refused client should wait: about the time to drain the backlog.

        Exporters retry after exactly the delay they are given, so a random spread keeps
        refused clients from all coming back at the same instant.
        """
        drain = self.writer.drain_seconds() * random.uniform(1.0, 2.0)
        return min(MAX_RETRY_S, max(MIN_RETRY_S, drain))

    def _handler(self, signal: _Signal) -> Callable[[bytes, Any], Any]:
        async def export(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self.export(signal, data, context)

        return export

    async def export(
        self, signal: _Signal, data: bytes, context: grpc.aio.ServicerContext
    ) -> bytes:
        if self._token_digest is not None:
            problem = self._auth_problem(context)
            if problem is not None:
                self.unauthenticated += 1
                self._refuse(signal, context, problem)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        try:
            batch = await self.decoders.decode(signal.name, data, self.clock())
        except DecodeError as e:
            self.malformed += 1
            self._refuse(signal, context, audit.MALFORMED)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode OTLP {signal.name}: {e}"
            )
        except DecoderLost:
            await _abort(context, retry_status(DECODER_LOST, MIN_RETRY_S))
        if batch.size:
            loop = asyncio.get_running_loop()
            committed: asyncio.Future[BaseException | None] = loop.create_future()

            def done(error: BaseException | None) -> None:
                loop.call_soon_threadsafe(_settle, committed, error)

            if not self.writer.try_submit(batch, done):
                await _abort(context, retry_status(OVERLOADED, self.retry_delay()))
            error = await committed
            if error is not None:
                await _abort(context, retry_status(STORE_FAILED, MAX_RETRY_S))
        return signal.respond(batch)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)


async def _abort(context: grpc.aio.ServicerContext, status: _Status) -> None:
    await context.abort(status.code, status.details, status.trailing_metadata)


def _bind_problem(address: str) -> str:
    """Why ``address`` cannot be bound, in the operating system's words."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as e:
        return f"cannot resolve host ({e})"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as e:
                return e.strerror or str(e)
    return "the address is not available"


class BindError(Exception):
    """The listening address cannot be bound; the message says which and why."""


async def start_server(
    receiver: Receiver, address: str, *, max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start serving on ``address`` (host:port; port 0 picks a free one); returns the port.

    With ``credentials`` the port speaks TLS only.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            # Without this Linux lets a second server bind the same port silently.
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers(receiver.handlers())
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if not port:
        raise BindError(f"cannot listen on {address}: {_bind_problem(address)}")
    await server.start()
    return server, port
